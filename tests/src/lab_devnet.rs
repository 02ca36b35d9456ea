//! A devnet inside the network lab: the chain (anvil with the registry, in this process)
//! reachable at a public lab host, a public bootstrap node and a public relayer (the homes'
//! STUN servers; the relayer also grants relayed media paths), and configs for `chroom`
//! processes on any lab host that use them. The NAT matrix, the pages behind NATs and the
//! NAT benchmark share it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chroom_types::RoomKind;

use crate::lab::{Host, Lab};
use crate::process::NodeProcess;
use crate::{Chain, CuttableProxy};

/// Fixed ports of the public nodes (others take any free port).
pub const P2P_PORT: u16 = 4001;
/// The public nodes' media port.
pub const MEDIA_PORT: u16 = 4002;
const RPC_PORT: u16 = 8545;
/// Anvil accounts: 1 may speak in every call's room, 2 may listen; 3 and 4 run the public
/// nodes and have no role.
const PUBLISHER: usize = 1;
const RECORDER: usize = 2;
const BOOTSTRAP: usize = 3;
const RELAYER: usize = 4;
/// The relayer's `[relay]`: room for every relayed path a test asks for (each node behind a
/// symmetric NAT takes one).
const RELAY_SECTION: &str = "\n[relay]\nupload_budget_kbps = 100000\n";

/// See the module docs. Dropping it stops the public nodes, the chain and the lab.
#[derive(Debug)]
pub struct LabDevnet {
    /// The lab; add homes and hosts to it.
    pub lab: Lab,
    /// The chain, as this process reaches it.
    pub chain: Chain,
    rpc_url: String,
    stun_servers: Vec<SocketAddr>,
    bootstrap: String,
    relayer_ip: IpAddr,
    dir: tempfile::TempDir,
    _rpc: CuttableProxy,
    /// The bootstrap node, then the relayer.
    public_nodes: Vec<NodeProcess>,
}

impl LabDevnet {
    /// A lab with the chain and the public nodes up.
    pub async fn start() -> Self {
        let mut lab = Lab::new().unwrap_or_else(|e| panic!("{e}"));
        let (chain, _) = Chain::with_room("lab-unused").await;
        let chain_host = lab.public_host("chain").unwrap();
        let listener = lab.listen_tcp(&chain_host, RPC_PORT).unwrap();
        let anvil = SocketAddr::from(([127, 0, 0, 1], chain.anvil.port()));
        let rpc = CuttableProxy::serve(tokio::net::TcpListener::from_std(listener).unwrap(), anvil);
        let boot_host = lab.public_host("boot").unwrap();
        let relayer_host = lab.public_host("relayer").unwrap();
        let mut devnet = Self {
            lab,
            chain,
            rpc_url: format!("http://{}:{RPC_PORT}", chain_host.addr),
            stun_servers: Vec::new(),
            bootstrap: String::new(),
            relayer_ip: relayer_host.addr.into(),
            dir: tempfile::tempdir().unwrap(),
            _rpc: rpc,
            public_nodes: Vec::new(),
        };
        let mut boot = devnet.public_node(&boot_host, BOOTSTRAP, "boot", false);
        boot.started(Duration::from_secs(30)).await;
        devnet.bootstrap = format!(
            "/ip4/{}/tcp/{P2P_PORT}/p2p/{}",
            boot_host.addr,
            boot.peer_id()
        );
        let mut relayer = devnet.public_node(&relayer_host, RELAYER, "relayer", true);
        relayer.started(Duration::from_secs(30)).await;
        devnet.stun_servers = [boot_host.addr, relayer_host.addr]
            .map(|ip| SocketAddr::from((ip, MEDIA_PORT)))
            .to_vec();
        devnet.public_nodes = vec![boot, relayer];
        devnet
    }

    /// Where node state goes: a directory removed with the devnet.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The relayer's process id (its CPU use is a figure of the NAT benchmark).
    pub fn relayer_pid(&self) -> u32 {
        self.public_nodes[1].pid()
    }

    /// The relayer's address: a link from it is relayed.
    pub fn relayer_ip(&self) -> IpAddr {
        self.relayer_ip
    }

    /// Starts `chroom <command…>` on `host`, acting for anvil account `account`, its state in
    /// `<dir>/<name>`; `extra` is appended to its config (a `[web]` section, say).
    pub fn node(
        &self,
        host: &Host,
        account: usize,
        name: &str,
        command: &[&str],
        extra: &str,
    ) -> NodeProcess {
        let dir = self.dir().join(name);
        let mut config = self.config(host, account, &dir, 0, 0);
        config.push_str(extra);
        NodeProcess::spawn_in(&dir, &config, Some(&host.ns), command)
    }

    /// A long-lived public node on fixed ports (the bootstrap, the relayer).
    fn public_node(&self, host: &Host, account: usize, name: &str, relay: bool) -> NodeProcess {
        let dir = self.dir().join(name);
        let mut config = self.config(host, account, &dir, P2P_PORT, MEDIA_PORT);
        if relay {
            config.push_str(RELAY_SECTION);
        }
        NodeProcess::spawn_in(&dir, &config, Some(&host.ns), &["node"])
    }

    /// A node config for `host`, as `node-config/production.toml` has it: libp2p and media on
    /// every address of the host, offering the host's own address, asking the public nodes
    /// for its NAT mapping, acting for `account` and checking the registry. A node on fixed
    /// ports is a public one: it serves libp2p relay circuits (signaling for nodes behind
    /// NATs). Unlike production.toml, every node serves the DHT: with `kad_mode = "auto"` (a
    /// DHT client behind NAT) joins across homes take 2.5 s rather than 15–40 s in
    /// `nat-bench`, but now and then a call never started under load, which is not understood
    /// yet; the tests keep the setting they pass with.
    fn config(&self, host: &Host, account: usize, dir: &Path, p2p: u16, media: u16) -> String {
        let key: PathBuf = self.chain.key_file(dir, account);
        let quote = |items: Vec<String>| {
            items
                .iter()
                .map(|item| format!("\"{item}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let bootstrap = quote(
            Some(self.bootstrap.clone())
                .filter(|b| !b.is_empty())
                .into_iter()
                .collect(),
        );
        let stun = quote(self.stun_servers.iter().map(ToString::to_string).collect());
        format!(
            "[net]\nlisten = [\"/ip4/0.0.0.0/tcp/{p2p}\"]\nbootstrap = [{bootstrap}]\n\
             kad_mode = \"server\"\nsignal_timeout = \"10s\"\nrelay_service = {public}\n\n\
             [media]\nbind = \"0.0.0.0:{media}\"\nadvertise = [\"{addr}\"]\n\
             stun_servers = [{stun}]\n\n\
             [identity]\naccount_key_file = \"{key}\"\n\n\
             [registry]\nrpc_url = \"{rpc}\"\naddress = \"{registry}\"\npoll_interval = \"200ms\"\n\n\
             [log]\nfilter = \"chroom=info\"\n",
            addr = host.addr,
            public = p2p != 0,
            key = key.display(),
            rpc = self.rpc_url,
            registry = self.chain.registry.address(),
        )
    }
}

/// A call in a room of its own: a member publishing the test media at one host, another
/// recording it at another.
#[derive(Debug)]
pub struct Call {
    /// The `chroom publish` process (anvil account 1, a speaker).
    pub publisher: NodeProcess,
    /// The `chroom record` process (anvil account 2, a listener).
    pub recorder: NodeProcess,
    /// Where the recorder writes.
    pub out: PathBuf,
}

impl LabDevnet {
    /// Registers `room` and starts a [`Call`] in it: the publisher at `from` (started once it
    /// returns), the recorder at `to`, recording until `stop` (`["--frames", "60"]`, say).
    pub async fn call(
        &self,
        room: &str,
        from: &Host,
        to: &Host,
        media: &(PathBuf, PathBuf),
        stop: &[&str],
    ) -> Call {
        self.chain.add_room(room, RoomKind::Conference).await;
        let (video, audio) = (media.0.to_string_lossy(), media.1.to_string_lossy());
        let mut publisher = self.node(
            from,
            PUBLISHER,
            &format!("{room}/publisher"),
            &[
                "publish", "--room", room, "--video", &video, "--audio", &audio,
            ],
            "",
        );
        publisher.started(Duration::from_secs(30)).await;
        let out = self.dir().join(room).join("out");
        let out_arg = out.to_string_lossy();
        let mut command = vec!["record", "--room", room, "--out", &out_arg];
        command.extend_from_slice(stop);
        let recorder = self.node(to, RECORDER, &format!("{room}/recorder"), &command, "");
        Call {
            publisher,
            recorder,
            out,
        }
    }
}

impl Call {
    /// The recorded video file, once the recorder has made it.
    pub fn video(&self) -> Option<PathBuf> {
        std::fs::read_dir(&self.out)
            .ok()?
            .map(|entry| entry.ok().map(|e| e.path()))
            .find(|path| {
                path.as_ref()
                    .is_some_and(|p| p.extension().is_some_and(|e| e == "ivf"))
            })
            .flatten()
    }

    /// How the recorder's link reached it (see [`link_remote`]).
    pub fn path(&self) -> Option<(SocketAddr, bool)> {
        link_remote(&self.recorder.log_tail(usize::MAX))
    }
}

/// How the first connected link's handshake reached a node, from its log: from where, and
/// whether through the node's own relay allocation.
pub fn link_remote(log: &str) -> Option<(SocketAddr, bool)> {
    log.lines()
        .filter(|line| line.contains("link connected"))
        .find_map(|line| {
            let (_, rest) = line.split_once("remote=Some(")?;
            let remote = rest.split_once(')')?.0.parse().ok()?;
            Some((remote, line.contains("via_relay=true")))
        })
}

/// The page link a `chroom node` printed (`web http://127.0.0.1:PORT/?token=…`).
pub fn page_link(log: &str) -> Option<String> {
    log.lines()
        .find_map(|line| line.strip_prefix("web "))
        .map(str::to_owned)
}
