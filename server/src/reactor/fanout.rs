//! Writing events to their receivers: the receivers of each event found in
//! the index, each connection's frames of a batch in one `writev`, queues
//! drained when a socket is writable again, and `Reactors::share`, the one
//! way a thread reaches another reactor's state without its inbox.

use bytes::Bytes;

use super::inbox::Delivery;
use super::{Reactor, Reactors};
use crate::conn::{Flush, Sent};
use crate::event::Event;
use crate::index::ConnId;
use rtbench_protocol::frame::close;

impl Reactors {
    /// Fans `batch` out on every reactor but `from` (the caller, which
    /// fans it out itself). An idle reactor (asleep in epoll, nothing in
    /// its inbox) is not woken: unless `from` is busy itself, it writes
    /// the frames to that reactor's connections in its place, as one thread
    /// would. Waking a sleeping thread for a few writes costs more than the
    /// writes (two context switches and an eventfd write per event); a
    /// busy caller hands the work over, so under load every reactor does
    /// its own share.
    pub(super) fn share(&self, batch: &[Delivery], from: &mut Reactor) {
        let help = !from.load.busy();
        for (i, h) in self.handles.iter().enumerate() {
            if i == from.number {
                continue;
            }
            if help
                && let Ok(mut state) = h.state.try_lock()
                && let Some(other) = state.as_mut()
                && h.inbox.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
            {
                // Nothing queued before these: publishing order holds.
                let deadlines = other.wheel.len();
                other.fan_out(batch);
                other.flush_stats();
                from.stats.on_behalf += batch.len() as u64;
                if other.wheel.len() > deadlines {
                    // A deadline its sleep did not count on (a slow
                    // consumer closed): let it set its timeout again.
                    let _ = h.waker.wake();
                }
                continue;
            }
            let copies: Vec<Delivery> = batch
                .iter()
                .map(|d| Delivery {
                    event: d.event.clone(),
                    tally: None,
                })
                .collect();
            h.push(|b| b.events.extend(copies));
            from.stats.handed_over += batch.len() as u64;
        }
    }
}

impl Reactor {
    /// Sends frames to one connection, closing it if its queue overflows.
    pub(crate) fn send(&mut self, id: ConnId, frames: &[&Bytes]) -> bool {
        let limit = self.shared.config.max_outbound_bytes;
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let sent = c.send(frames, limit, &mut self.stats.writes);
        self.stats.queued += c.queued_bytes() as i64 - before;
        match sent {
            Sent::Accepted => {
                self.stats.frames_out += frames.len() as u64;
                self.stats.bytes_out += frames.iter().map(|f| f.len() as u64).sum::<u64>();
                true
            }
            Sent::Dropped => false,
            Sent::Overflow => {
                self.stats.slow_consumers += 1;
                self.close(id, close::TRY_AGAIN_LATER, "slow consumer");
                false
            }
        }
    }

    /// Delivers a batch of events: receivers found per event, then each
    /// connection's frames written together, in publishing order.
    pub(super) fn fan_out(&mut self, batch: &[Delivery]) {
        let mut counts = vec![0u64; batch.len()];
        if batch.len() == 1 {
            let mut receivers = std::mem::take(&mut self.receivers);
            receivers.clear();
            self.match_event(&batch[0].event, &mut receivers);
            let frame = &batch[0].event.frame;
            for &id in &receivers {
                if self.send(id, &[frame]) {
                    counts[0] += 1;
                }
            }
            self.receivers = receivers;
        } else {
            let mut keys = std::mem::take(&mut self.keys);
            let mut receivers = std::mem::take(&mut self.receivers);
            keys.clear();
            for (i, d) in batch.iter().enumerate() {
                receivers.clear();
                self.match_event(&d.event, &mut receivers);
                keys.extend(receivers.iter().map(|&id| u64::from(id) << 32 | i as u64));
            }
            keys.sort_unstable();
            let mut at = 0;
            let mut frames: Vec<&Bytes> = Vec::new();
            while at < keys.len() {
                let id = (keys[at] >> 32) as ConnId;
                let end = at
                    + keys[at..]
                        .iter()
                        .take_while(|&&k| (k >> 32) as ConnId == id)
                        .count();
                frames.clear();
                frames.extend(
                    keys[at..end]
                        .iter()
                        .map(|&k| &batch[k as u32 as usize].event.frame),
                );
                if self.send(id, &frames) {
                    for &k in &keys[at..end] {
                        counts[k as u32 as usize] += 1;
                    }
                }
                at = end;
            }
            self.keys = keys;
            self.receivers = receivers;
        }
        for (d, n) in batch.iter().zip(counts) {
            self.stats.deliveries += n;
            if let Some(t) = &d.tally {
                t.report(n);
            }
        }
    }

    /// Appends the connections of this reactor that may receive `ev`.
    pub(super) fn match_event(&self, ev: &Event, out: &mut Vec<ConnId>) {
        self.index
            .matches_names(&self.names, &ev.project, &ev.channels, &ev.roles, out);
    }

    pub(super) fn on_writable(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        let before = c.queued_bytes() as i64;
        let flushed = c.flush(&mut self.stats.writes);
        self.stats.queued += c.queued_bytes() as i64 - before;
        match flushed {
            Ok(Flush::Done) if c.is_closing() && !c.flags.fin_sent() => self.finish_close(id),
            Ok(_) => {}
            Err(_) => self.release(id),
        }
    }
}
