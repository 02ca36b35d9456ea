//! Nodes in the network lab (issue 13): `chroom` processes inside lab hosts, a publisher on the
//! public segment and recorders in homes behind each kind of NAT. What crosses a NAT today is
//! asserted here; the cells that need NAT traversal join as it is built.

use std::path::Path;
use std::time::Duration;

use chroom_node::publish::MediaSource;
use chroom_tests::lab::{Host, Lab, Nat};
use chroom_tests::process::NodeProcess;
use chroom_tests::{check_against_source, fixtures, init_tracing};

const ROOM: &str = "lab-room";
const P2P_PORT: u16 = 4001;
const MEDIA_PORT: u16 = 4002;

/// A node config for `host` as `node-config/production.toml` has it: libp2p and media on fixed
/// ports of every address, offering the host's own address (all it knows of itself), no
/// registry.
fn config(host: &Host, bootstrap: Option<String>) -> String {
    let bootstrap = bootstrap.map_or_else(String::new, |b| format!("\"{b}\""));
    format!(
        "[node]\nopen_access = true\n\n\
         [net]\nlisten = [\"/ip4/0.0.0.0/tcp/{P2P_PORT}\"]\nbootstrap = [{bootstrap}]\n\
         kad_mode = \"server\"\nsignal_timeout = \"10s\"\n\n\
         [media]\nbind = \"0.0.0.0:{MEDIA_PORT}\"\nadvertise = [\"{addr}\"]\n\n\
         [log]\nfilter = \"chroom=info\"\n",
        addr = host.addr
    )
}

/// Records 60 video frames of the room in `host` and checks them against the source.
async fn record_in(host: &Host, dir: &Path, bootstrap: &str, source: &MediaSource) {
    let out = dir.join("out");
    let out_arg = out.to_string_lossy().into_owned();
    let mut recorder = NodeProcess::spawn_in(
        &dir.join("node"),
        &config(host, Some(bootstrap.to_owned())),
        Some(&host.ns),
        &[
            "record", "--room", ROOM, "--out", &out_arg, "--frames", "60",
        ],
    );
    recorder.finished(Duration::from_secs(60)).await;
    let video = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "ivf"))
        .expect("a video file recorded");
    check_against_source(&video, source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorders_behind_each_kind_of_nat_record_a_public_publisher() {
    init_tracing();
    let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
    let public = lab.public_host("publisher").unwrap();
    let mut homes = Vec::new();
    for (name, nat) in [
        ("open", Nat::None),
        ("kept", Nat::PortPreserving),
        ("random", Nat::Symmetric),
    ] {
        let mut home = lab.home(name, nat).unwrap();
        let host = lab.home_host(&mut home, &format!("{name}-rec")).unwrap();
        homes.push((name, host));
    }
    let dir = tempfile::tempdir().unwrap();
    let (video, audio) = fixtures();
    let source = MediaSource::load(Some(&video), Some(&audio)).unwrap();
    let (video_arg, audio_arg) = (
        video.to_string_lossy().into_owned(),
        audio.to_string_lossy().into_owned(),
    );
    let mut publisher = NodeProcess::spawn_in(
        &dir.path().join("publisher"),
        &config(&public, None),
        Some(&public.ns),
        &[
            "publish", "--room", ROOM, "--video", &video_arg, "--audio", &audio_arg,
        ],
    );
    publisher.started(Duration::from_secs(30)).await;
    let bootstrap = format!(
        "/ip4/{}/tcp/{P2P_PORT}/p2p/{}",
        public.addr,
        publisher.peer_id()
    );
    for (name, host) in &homes {
        println!("recording behind the {name} home's router");
        record_in(host, &dir.path().join(name), &bootstrap, &source).await;
    }
}
