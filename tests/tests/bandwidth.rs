//! Bandwidth estimation on the links between nodes in a conference (issue 15, its first
//! part): with `[media] bandwidth_estimation` on, a member publishing the fixtures (1.5 Mbit/s
//! of video) to another over loopback reports, per member it sends to, an estimate that grows
//! past what it sends (str0m probes for more), in its stats and its `/metrics`.

use std::time::Duration;

use chroom_node::publish::{Looping, MediaSource, publish};
use chroom_node::{NodeConfig, RunningNode};
use chroom_room::Participation;
use chroom_tests::{eventually, fixtures, init_tracing, ops, tcp_addr};
use chroom_types::{MediaKind, RoomName};
use tokio_util::sync::CancellationToken;

async fn estimating_node(
    dir: &std::path::Path,
    bootstrap: &[chroom_net::Multiaddr],
) -> RunningNode {
    let mut config = NodeConfig::loopback(dir.to_path_buf());
    config.open_access = true;
    config.net.bootstrap = bootstrap.to_vec();
    config.media.bandwidth_estimation = true;
    config.metrics = Some("127.0.0.1:0".parse().unwrap());
    RunningNode::start(config).await.expect("node starts")
}

fn meet(publish: Vec<MediaKind>) -> Participation {
    Participation::Meet {
        publish,
        receive: vec![MediaKind::Audio, MediaKind::Video],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conference_link_estimates_what_it_can_carry() {
    init_tracing();
    let room = "estimates".parse::<RoomName>().unwrap().id();
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let sender = estimating_node(&dir.path().join("sender"), &[]).await;
    let receiver = estimating_node(&dir.path().join("receiver"), &[tcp_addr(&sender).await]).await;
    sender.join(room, meet(source.kinds())).await.unwrap();
    receiver.join(room, meet(Vec::new())).await.unwrap();
    let cancel = CancellationToken::new();
    let playing = publish(&sender, &source, Looping::Forever, cancel.clone());
    let receiver_id = receiver.peer_id();
    let checked = async {
        // The estimate of the link to the receiver grows past the 1.5 Mbit/s sent on it.
        let estimate = eventually(
            Duration::from_secs(30),
            "an estimate above what the link carries",
            || async {
                let stats = sender.stats().await.ok()?;
                let (_, bps) = stats
                    .bandwidth_estimates
                    .iter()
                    .find(|(peer, _)| *peer == receiver_id)?;
                (*bps > 1_600_000).then_some(*bps)
            },
        )
        .await;
        println!("estimate to the receiver: {estimate} bit/s");
        // And `/metrics` says so, per member (its snapshot is refreshed once a second).
        let metrics = sender.metrics_addr().unwrap();
        let peer = receiver_id.to_base58();
        let reported = eventually(
            Duration::from_secs(5),
            "the estimate in /metrics",
            || async {
                let scraped = ops::scrape(metrics).await;
                let labels = [("direction", "send"), ("peer", peer.as_str())];
                ops::sample(
                    &scraped,
                    "chroom_link_bandwidth_estimate_bits_per_second",
                    &labels,
                )
            },
        )
        .await;
        assert!(reported > 1_000_000.0, "{reported}");
    };
    tokio::select! {
        () = checked => {}
        stopped = playing => panic!("the publisher stopped: {stopped:?}"),
    }
    cancel.cancel();
    receiver.shutdown().await;
    sender.shutdown().await;
}
