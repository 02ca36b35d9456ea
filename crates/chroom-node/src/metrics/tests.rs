use std::time::{Duration, Instant};

use chroom_registry::RegistryStats;
use chroom_types::RoomName;
use prometheus_parse::{Scrape, Value};

use super::*;

/// Parses `text` with a real Prometheus text parser (not a pattern of ours).
fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text")
}

/// The value of the sample `name` with `labels`, panicking if there is not exactly one.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Value {
    let mut found = scrape.samples.iter().filter(|sample| {
        sample.metric == name
            && labels
                .iter()
                .all(|(label, value)| sample.labels.get(label) == Some(*value))
    });
    let sample = found
        .next()
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    assert!(found.next().is_none(), "two samples {name} {labels:?}");
    sample.value.clone()
}

fn snapshot(taken: Instant) -> Snapshot {
    let mut stats = NodeStats {
        receiving_links: 2,
        sending_links: 1,
        gossip_delivered: 7,
        gossip_rejected: 1,
        registry_stale: true,
        registry_unreachable_secs: Some(12),
        registry: Some(RegistryStats {
            lookups_requested: 5,
            lookups_dropped: 0,
            facts_read: 4,
            rpc_errors: 3,
            head_block: 42,
        }),
        ..NodeStats::default()
    };
    stats.relay.packets_forwarded = 1000;
    stats.relay.hop_latency.record(Duration::from_micros(300));
    let room: RoomName = "ops \"quoted\" room".parse().unwrap();
    Snapshot {
        taken,
        stats,
        rooms: vec![RoomReport {
            room: room.id(),
            part: "meet",
            members: 2,
            media_links: 2,
            feeding: 1,
            tree_parent: None,
        }],
    }
}

#[test]
fn the_exposition_parses_as_prometheus_text_with_its_types() {
    let now = Instant::now();
    let started = now - Duration::from_secs(90);
    let snapshot = snapshot(now - Duration::from_millis(500));
    let text = render("12D3KooWtest", now, started, Some(&snapshot), 1);
    let scrape = parse(&text);

    assert!(matches!(value(&scrape, "chroom_uptime_seconds", &[]), Value::Gauge(s) if s >= 90.0));
    assert!(
        matches!(value(&scrape, "chroom_info", &[("peer_id", "12D3KooWtest")]), Value::Gauge(v) if v == 1.0)
    );
    assert_eq!(
        value(&scrape, "chroom_links", &[("direction", "receiving")]),
        Value::Gauge(2.0)
    );
    assert_eq!(
        value(
            &scrape,
            "chroom_gossip_messages_total",
            &[("verdict", "delivered")]
        ),
        Value::Counter(7.0)
    );
    assert_eq!(
        value(&scrape, "chroom_relay_packets_forwarded_total", &[]),
        Value::Counter(1000.0)
    );
    let room = snapshot.rooms[0].room.to_string();
    assert_eq!(
        value(
            &scrape,
            "chroom_room_members",
            &[("room", &room), ("part", "meet")]
        ),
        Value::Gauge(2.0)
    );
    assert_eq!(value(&scrape, "chroom_rooms", &[]), Value::Gauge(1.0));
    assert_eq!(
        value(&scrape, "chroom_registry_stale", &[]),
        Value::Gauge(1.0)
    );
    assert_eq!(
        value(&scrape, "chroom_registry_unreachable_seconds", &[]),
        Value::Gauge(12.0)
    );
    assert_eq!(
        value(&scrape, "chroom_registry_lookups_total", &[]),
        Value::Counter(5.0)
    );
    assert_eq!(
        value(&scrape, "chroom_registry_head_block", &[]),
        Value::Gauge(42.0)
    );
    assert_eq!(
        value(&scrape, "chroom_snapshot_refresh_failures_total", &[]),
        Value::Counter(1.0)
    );
    let Value::Summary(quantiles) = value(&scrape, "chroom_relay_hop_latency_seconds", &[]) else {
        panic!("hop latency is a summary");
    };
    assert_eq!(quantiles.len(), 2, "{quantiles:?}");
    assert!(
        quantiles.iter().all(|q| q.count > 0.0 && q.count < 0.001),
        "{quantiles:?}"
    );
    // Every family has its help.
    for sample in &scrape.samples {
        let family = sample
            .metric
            .strip_suffix("_count")
            .filter(|family| scrape.docs.contains_key(*family))
            .unwrap_or(&sample.metric);
        assert!(
            scrape.docs.contains_key(family),
            "{} has no HELP",
            sample.metric
        );
    }
}

#[test]
fn a_node_that_has_not_reported_yet_shows_only_what_is_known() {
    let now = Instant::now();
    let text = render("12D3KooWtest", now, now, None, 0);
    let scrape = parse(&text);
    assert!(
        scrape
            .samples
            .iter()
            .all(|sample| sample.metric != "chroom_rooms"),
        "{text}"
    );
    assert_eq!(
        value(&scrape, "chroom_snapshot_refresh_failures_total", &[]),
        Value::Counter(0.0)
    );
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut out = Exposition::default();
    out.family("x", Type::Gauge, "a \\ backslash\nand a newline");
    out.sample("x", &[("l", "quote \" back \\ nl \n end")], 1.0);
    let text = out.finish();
    assert_eq!(text.lines().count(), 3, "{text}");
    let scrape = parse(&text);
    assert_eq!(scrape.samples.len(), 1);
}

#[test]
fn status_names_the_problems_and_the_rooms() {
    let now = Instant::now();
    let mut old = snapshot(now - Duration::from_secs(30));
    old.stats.last_refusal = Some("not allowed".to_owned());
    let report = StatusReport::new("12D3KooWtest", None, now, now, Some(&old));
    let text = report.to_text();
    assert!(text.contains("not answered for 30s"), "{text}");
    assert!(text.contains("registry unreachable for 12s"), "{text}");
    assert!(text.contains("not allowed"), "{text}");
    assert!(text.contains(&old.rooms[0].room.to_string()), "{text}");
    assert!(text.contains("meet: 2 members"), "{text}");

    let mut fresh = snapshot(now);
    fresh.stats.registry_stale = false;
    fresh.stats.registry_unreachable_secs = None;
    let report = StatusReport::new("12D3KooWtest", None, now, now, Some(&fresh));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.to_text().contains("health ok"));
    // What /status sends is what `chroom status` reads.
    let json = serde_json::to_string(&report).unwrap();
    let back: StatusReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back.rooms.len(), 1);
}
