//! The reactor side of the Redis event bus: the first reactor of a process
//! with `--bus` holds the subscription in its own epoll, reconnects with
//! back-off, parses each event once, fans it out itself and shares it with
//! the other reactors (`fanout.rs`).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use mio::Interest;
use mio::unix::SourceFd;

use super::inbox::Delivery;
use super::{BUS, Reactor};
use crate::event::Event;
use crate::subscriber::Got;

impl Reactor {
    /// Starts (re)connecting the bus subscription, if this reactor has one.
    pub(super) fn bus_connect(&mut self) {
        let Some(sub) = &mut self.subscriber else {
            return;
        };
        let registered = sub.connect().and_then(|sock| {
            let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
            self.registry.register(
                &mut SourceFd(&fd),
                BUS,
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        if let Err(e) = registered {
            self.bus_lost(format!("cannot connect: {e}"));
        }
    }

    /// The bus connection failed: count the outage once, retry with back-off.
    pub(super) fn bus_lost(&mut self, why: String) {
        let Some(sub) = &mut self.subscriber else {
            return;
        };
        let m = &self.shared.metrics;
        if sub.down_since.is_none() {
            if m.bus_up.swap(0, Relaxed) == 1 {
                eprintln!(
                    "rtbench-server: bus: lost {} ({why}); connections stay, reconnecting",
                    sub.url()
                );
            } else {
                eprintln!(
                    "rtbench-server: bus: cannot subscribe on {}: {why}",
                    sub.url()
                );
            }
            m.bus_outages.fetch_add(1, Relaxed);
        }
        sub.disconnect();
    }

    /// Reads the bus: each event parsed once, fanned out here and queued on
    /// the process's other reactors.
    pub(super) fn on_bus(&mut self, buf: &mut [u8]) {
        let Some(sub) = &mut self.subscriber else {
            return;
        };
        let mut docs: Vec<Result<Event, String>> = Vec::new();
        let mut subscribed = false;
        let result = sub.ready(buf, |got| match got {
            Got::Subscribed => subscribed = true,
            Got::Message(doc) => docs.push(crate::event::parse(doc)),
        });
        let m = &self.shared.metrics;
        if subscribed {
            m.bus_up.store(1, Relaxed);
            match sub.down_since.take() {
                Some(t) => {
                    eprintln!(
                        "rtbench-server: bus: back on {} after {:.1} s",
                        sub.url(),
                        t.elapsed().as_secs_f64()
                    )
                }
                None => eprintln!(
                    "rtbench-server: bus: subscribed to `{}` on {}",
                    crate::bus::CHANNEL,
                    sub.url()
                ),
            }
        }
        let mut batch = Vec::with_capacity(docs.len());
        for doc in docs {
            match doc {
                Ok(ev) => {
                    if let (Some(seq), Some(last)) = (ev.seq, sub.last_seq)
                        && seq > last + 1
                    {
                        m.bus_events_missed.fetch_add(seq - last - 1, Relaxed);
                    }
                    if ev.seq.is_some() {
                        sub.last_seq = ev.seq.max(sub.last_seq);
                    }
                    let ev = Arc::new(ev);
                    m.bus_events_in.fetch_add(1, Relaxed);
                    m.events_in.fetch_add(1, Relaxed);
                    batch.push(Delivery {
                        event: ev,
                        tally: None,
                    });
                }
                Err(e) => {
                    if m.events_invalid.fetch_add(1, Relaxed).is_power_of_two() {
                        eprintln!("rtbench-server: bus: ignoring a message: {e}");
                    }
                }
            }
        }
        if let Err(why) = result {
            self.bus_lost(why);
        }
        if !batch.is_empty() {
            let reactors = self.reactors.clone();
            reactors.share(&batch, self);
            self.fan_out(&batch);
        }
    }
}
