//! What a worker's tasks share: its plan, its targets and sources, the hold's
//! slab, counters and histograms, and the flags that stop it. One thread runs
//! every task, so the state is cells in one `Rc`, never locks.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use rtbench_record::endpoint::{Endpoint, expand_sources};
use rtbench_record::load::EventSpan;

use crate::hold::{Holds, Key};
use crate::stats::{self, Counters, Hist, Hists};
use crate::wire::Plan;

/// One worker's state, shared by its tasks through an `Rc`.
pub(super) struct Worker {
    pub(super) plan: Plan,
    pub(super) targets: Vec<Endpoint>,
    pub(super) sources: Vec<IpAddr>,
    pub(super) next_source: Cell<usize>,
    pub(super) counters: RefCell<Counters>,
    pub(super) hists: RefCell<Hists>,
    /// This second's connect and delivery latencies.
    pub(super) interval_connect: RefCell<Hist>,
    pub(super) interval_delivery: RefCell<Hist>,
    /// This second's latest arrival (the run's are `hists.arrival_lag`).
    pub(super) lag_max_ns: Cell<u64>,
    pub(super) connecting: Cell<u64>,
    pub(super) holds: RefCell<Holds>,
    /// When each ping group (slot index mod the ping period in ticks) was
    /// last pinged: the start of its pongs' round trips.
    pub(super) ping_sent_ns: RefCell<Vec<u64>>,
    /// Events received per subscriber (local arrival index), over the run.
    pub(super) received_by_user: RefCell<Vec<u32>>,
    /// Each event's first and last arrival here, by sequence (a scenario
    /// with `per_event`).
    pub(super) spans: RefCell<Vec<EventSpan>>,
    /// Each connection's received range is checked for misses: only when
    /// every subscriber is sent every event (`Scenario::every_event_reaches_every_subscriber`).
    pub(super) counts_misses: bool,
    /// Attempts in progress by deadline (all share one timeout).
    pub(super) deadlines: RefCell<VecDeque<(u64, Key)>>,
    /// Every arrival of the schedule has been started.
    pub(super) arrived: Cell<bool>,
    /// No new arrivals or reconnects.
    pub(super) stopping: Cell<bool>,
    /// Connections are being closed.
    pub(super) closing: Cell<bool>,
    pub(super) interrupted: Arc<AtomicBool>,
}

/// The most connections this worker holds at once: its share of the arrivals.
pub(super) fn plan_capacity(plan: &Plan) -> usize {
    (plan
        .scenario
        .peak_connections()
        .div_ceil(plan.workers.max(1)) as usize)
        .min(1 << 22)
}

impl Worker {
    pub(super) fn new(
        plan: Plan,
        holds: Holds,
        interrupted: Arc<AtomicBool>,
    ) -> Result<Worker, String> {
        let sc = &plan.scenario;
        let targets = sc
            .target
            .urls
            .iter()
            .map(|u| Endpoint::parse(u, sc.target.protocol))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = expand_sources(&sc.target.sources)?;
        let counts_misses = sc.every_event_reaches_every_subscriber();
        // Only a scenario that publishes counts events per subscriber; a
        // churn run counts per connection instead (`ConnSpan`): a table per
        // arrival would grow with the run, a leak of the load generator's
        // own that its soak would (rightly) name.
        let per_subscriber = if sc.publishers.is_empty() || sc.session.churns() {
            0
        } else {
            sc.all_arrivals().div_ceil(plan.workers.max(1)) as usize
        };
        Ok(Worker {
            plan,
            targets,
            sources,
            next_source: Cell::new(0),
            counters: RefCell::default(),
            hists: RefCell::default(),
            interval_connect: RefCell::new(stats::new_hist()),
            interval_delivery: RefCell::new(stats::new_hist()),
            lag_max_ns: Cell::new(0),
            connecting: Cell::new(0),
            holds: RefCell::new(holds),
            deadlines: RefCell::default(),
            arrived: Cell::new(false),
            stopping: Cell::new(false),
            closing: Cell::new(false),
            interrupted,
            ping_sent_ns: RefCell::new(Vec::new()),
            // Only a scenario that publishes counts events per subscriber.
            received_by_user: RefCell::new(vec![0; per_subscriber]),
            spans: RefCell::default(),
            counts_misses,
        })
    }
}
