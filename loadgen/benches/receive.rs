//! The receive path per delivered frame: parse the server frame, read the
//! stamp, check the receiver may read it, record the latency (twice: run and
//! second histograms). The target is at most 1 µs per frame.
//!
//! Run: `cargo bench -p rtbench-loadgen --bench receive`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rtbench_loadgen::client::{Held, Receiver};
use rtbench_loadgen::stats::{Counters, Hists, new_hist};
use rtbench_loadgen::users::Population;
use rtbench_loadgen::{stamp, sys};
use rtbench_protocol::frame;
use rtbench_record::scenario::{Protocol, Scenario};

const FRAMES: u64 = 1000;

fn receive(c: &mut Criterion) {
    let sc = Scenario::parse(
        "[target]\nurls=[\"ws://127.0.0.1:1\"]\n[[phases]]\nduration_s=1\nrate=1\n[session]\nchannel_pattern=\"chat.{}\"\nchannel_count=100\nchannels_per_user=2\nauth=\"jwt\"\nteams=10\nteams_per_user=1\n",
        "bench.toml",
    )
    .unwrap();
    let pop = Population::new(&sc);
    // What the server sends user 7: events on its channels, for various roles.
    let user = 7;
    let channels = pop.channels(user);
    let mut wire = Vec::new();
    for seq in 0..FRAMES {
        let to = ["any", "users", "team:t7", "user:u7"][(seq % 4) as usize];
        let payload = stamp::payload(sys::now_ns(), seq, to, 200);
        let text = format!(
            r#"{{"type":"event","data":{{"events":["rtbench.event"],"channels":["{}"],"timestamp":"2026-11-28T00:00:00.000+00:00","payload":{payload}}}}}"#,
            channels[(seq % 2) as usize]
        );
        wire.extend_from_slice(&frame::text(text.as_bytes()));
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let mut held = Held::new(stream, 0, user, user, 0, None);
    let (mut counters, mut hists, mut interval) =
        (Counters::default(), Hists::default(), new_hist());

    let mut group = c.benchmark_group("receive");
    group.throughput(Throughput::Elements(FRAMES));
    let mut received = 0u32;
    let mut message = Vec::new();
    group.bench_function("event_frames", |b| {
        b.iter(|| {
            held.seqs = Default::default();
            let mut r = Receiver {
                population: &pop,
                protocol: Protocol::Appwrite,
                counters: &mut counters,
                hists: &mut hists,
                delivery_interval: &mut interval,
                now_ns: sys::now_ns(),
                ping_sent_ns: 0,
                // As a worker's receive path does when events are published.
                received: Some(&mut received),
                span: None,
                spans: None,
            };
            black_box(
                r.frames(&mut held, black_box(&mut wire), &mut message)
                    .unwrap(),
            )
        })
    });
    group.finish();
    assert_eq!(counters.misdelivered, 0);
    assert_eq!(counters.duplicates, 0);
    assert!(counters.deliveries >= FRAMES);
}

criterion_group!(benches, receive);
criterion_main!(benches);
