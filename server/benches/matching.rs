//! Matching one event against N connections with 10 subscriptions each.
//!
//! Appwrite's realtime server scans every subscription per event: 10.9 ms at
//! 10,000 connections, 110 ms at 100,000, 1,121 ms at 1,000,000. The index
//! makes the cost follow the receivers instead, so each case states how many
//! connections it reaches. Names are looked up as a reactor does per event.
//!
//! Population: 80% signed-in users (each in one of 1,000 teams), 20% guests;
//! each connection subscribes to `files` plus 9 of 10,000 document channels.
//!
//! Run: `cargo bench -p rtbench-server --bench matching`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rtbench_protocol::jwt::{Claims, Team};
use rtbench_server::index::Index;
use rtbench_server::intern::{Id, Interner};
use rtbench_server::sessions::Sessions;

const CHANNELS: u64 = 10_000;
const TEAMS: u64 = 1_000;

/// A small deterministic generator, so every run builds the same population.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

/// What a reactor holding `n` connections keeps: the index and its names
/// (and its sessions' role sets).
fn population(n: u64) -> (Index, Interner) {
    let mut ix = Index::default();
    let mut names = Interner::default();
    let mut sessions = Sessions::default();
    let project = names.acquire("console");
    for i in 0..n {
        let mut channels: Vec<Box<str>> = vec!["files".into()];
        for k in 0..9 {
            channels.push(
                format!(
                    "databases.db.collections.c{}.documents",
                    mix(i * 16 + k) % CHANNELS
                )
                .into(),
            );
        }
        let user = (i % 5 != 0).then(|| Claims {
            sub: format!("u{i}"),
            exp: u64::MAX,
            teams: vec![Team {
                id: format!("t{}", mix(i) % TEAMS),
                roles: vec!["member".into()],
            }],
            labels: vec![],
        });
        let channels: Vec<Id> = channels.iter().map(|c| names.acquire(c)).collect();
        let session = sessions.acquire(&mut names, user.as_ref());
        let roles = sessions.roles_of(session);
        ix.insert(i as u32, project, &channels, &roles);
    }
    (ix, names)
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match_one_event");
    group.sample_size(30);
    for n in [10_000u64, 100_000, 1_000_000] {
        let (ix, names) = population(n);
        // Events about what connection 42 (a signed-in user) subscribes to.
        let doc = format!(
            "databases.db.collections.c{}.documents",
            mix(42 * 16) % CHANNELS
        );
        let doc_channels: Vec<String> = vec!["documents".into(), doc.clone(), format!("{doc}.d1")];
        let team = format!("team:t{}", mix(42) % TEAMS);
        let cases: [(&str, Vec<String>, Vec<String>); 4] = [
            ("document_any", doc_channels.clone(), vec!["any".into()]),
            (
                "document_team",
                doc_channels.clone(),
                vec![format!("{team}/member"), team.clone()],
            ),
            ("document_one_user", doc_channels, vec!["user:u42".into()]),
            (
                "broadcast_files_any",
                vec!["files".into()],
                vec!["any".into()],
            ),
        ];
        let mut out = Vec::new();
        for (name, channels, roles) in &cases {
            out.clear();
            ix.matches_names(&names, "console", channels, roles, &mut out);
            let receivers = out.len();
            group.bench_with_input(
                BenchmarkId::new(format!("{name}/receivers={receivers}"), n),
                &n,
                |b, _| {
                    b.iter(|| {
                        out.clear();
                        ix.matches_names(
                            &names,
                            "console",
                            black_box(channels),
                            black_box(roles),
                            &mut out,
                        );
                        black_box(out.len())
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
