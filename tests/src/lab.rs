//! The network lab: topologies built from network namespaces the test creates and removes.
//!
//! A **public segment** is a bridge in a namespace of its own (`<lab>-switch`); public hosts
//! (a bootstrap node, a relayer, the chain RPC) hang off it at `11.77.0.x`: addresses that
//! count as global, as a public host's do, so nodes run with production settings (AutoNAT
//! confirms only global addresses); they exist only inside the lab's namespaces, which have
//! no way out. A **home** is a
//! router namespace with one leg on the public segment and a LAN bridge (`10.78.N.0/24`)
//! behind it; its hosts reach the public segment through the router's NAT:
//! - [`Nat::None`]: routed, no translation (a host with a public address);
//! - [`Nat::PortPreserving`]: nftables `masquerade` — the mapping keeps the source port when it
//!   can and is the same for every destination (endpoint-independent), replies pass only from
//!   the address a packet went to (conntrack's filtering);
//! - [`Nat::Symmetric`]: `masquerade random,fully-random` — a new random port per destination.
//!
//! A NAT router also drops, unanswered, whatever arrives unasked for itself, as a home router's
//! firewall does (see [`Lab::home`]).
//!
//! Links can be shaped ([`Lab::shape`]: `tbf` rate, and an nftables `numgen random` drop rule;
//! there is no `netem` on these machines). Everything is removed when the [`Lab`] drops, even
//! when a test fails; labs left behind by a killed test process are swept by the next one.
//! Needs root, `ip` (iproute2), `tc`, `nft` and `conntrack` (`scripts/setup.sh` installs
//! nftables and conntrack).

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// How a home's router translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// No translation: the home's hosts are routed as they are.
    None,
    /// `masquerade`: endpoint-independent mapping, source port kept when free.
    PortPreserving,
    /// `masquerade random,fully-random`: a new random port per destination.
    Symmetric,
}

/// A host: a namespace with one address.
#[derive(Debug, Clone)]
pub struct Host {
    /// Its namespace.
    pub ns: String,
    /// Its address.
    pub addr: Ipv4Addr,
}

/// A home: a router and the LAN behind it.
#[derive(Debug, Clone)]
pub struct Home {
    /// The router's namespace.
    pub router: String,
    /// The router's address on the public segment (what the NAT maps to).
    pub public_addr: Ipv4Addr,
    /// How it translates.
    pub nat: Nat,
    subnet: u8,
    hosts: u8,
}

/// A lab; see the module docs.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    public: String,
    namespaces: Vec<String>,
    public_hosts: u8,
    homes: u8,
    veths: u32,
    /// LANs routed without translation, and their router: every public-side namespace needs
    /// the way back.
    routed: Vec<(String, Ipv4Addr)>,
    /// Namespaces with a leg on the public segment (public hosts, home routers); hosts in a
    /// home reach other LANs through their router.
    public_side: Vec<String>,
}

/// Labs made by this process, so concurrent tests in one process do not collide.
static LABS: AtomicU32 = AtomicU32::new(0);

/// The public segment's /24 (see the module docs).
const PUBLIC_NET: [u8; 2] = [11, 77];

/// Namespace names start with this, then the creating process's id.
const PREFIX: &str = "chl";

impl Lab {
    /// An empty lab with its public segment. Errors name what is missing (root, a tool).
    pub fn new() -> Result<Self, String> {
        for tool in ["ip", "tc", "nft", "conntrack"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .is_ok_and(|o| o.status.success());
            if !found {
                return Err(format!("the lab needs `{tool}`: run scripts/setup.sh"));
            }
        }
        sweep_abandoned();
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("{PREFIX}{pid}-{n}");
        let public = format!("{prefix}-switch");
        let mut lab = Self {
            prefix,
            public: public.clone(),
            namespaces: Vec::new(),
            public_hosts: 0,
            homes: 0,
            veths: 0,
            routed: Vec::new(),
            public_side: Vec::new(),
        };
        lab.add_ns(&public)?;
        lab.run(&public, &["ip", "link", "add", "br0", "type", "bridge"])?;
        lab.run(&public, &["ip", "link", "set", "br0", "up"])?;
        Ok(lab)
    }

    /// A host on the public segment.
    pub fn public_host(&mut self, name: &str) -> Result<Host, String> {
        let ns = format!("{}-{name}", self.prefix);
        self.add_ns(&ns)?;
        let addr = self.next_public_addr()?;
        self.wire(&ns, "eth0", &self.public.clone(), "br0")?;
        self.run(
            &ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        )?;
        self.run(&ns, &["ip", "link", "set", "eth0", "up"])?;
        self.add_routes(&ns)?;
        self.public_side.push(ns.clone());
        Ok(Host { ns, addr })
    }

    /// A home behind a router translating as `nat`.
    pub fn home(&mut self, name: &str, nat: Nat) -> Result<Home, String> {
        self.homes += 1;
        let subnet = self.homes;
        let router = format!("{}-{name}", self.prefix);
        self.add_ns(&router)?;
        let public_addr = self.next_public_addr()?;
        self.wire(&router, "wan", &self.public.clone(), "br0")?;
        self.run(
            &router,
            &[
                "ip",
                "addr",
                "add",
                &format!("{public_addr}/24"),
                "dev",
                "wan",
            ],
        )?;
        self.run(&router, &["ip", "link", "set", "wan", "up"])?;
        self.add_routes(&router)?;
        self.public_side.push(router.clone());
        self.run(&router, &["ip", "link", "add", "lan", "type", "bridge"])?;
        let gateway = format!("10.78.{subnet}.1/24");
        self.run(&router, &["ip", "addr", "add", &gateway, "dev", "lan"])?;
        self.run(&router, &["ip", "link", "set", "lan", "up"])?;
        self.run(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let masquerade = match nat {
            Nat::None => None,
            Nat::PortPreserving => Some("masquerade"),
            Nat::Symmetric => Some("masquerade random,fully-random"),
        };
        if let Some(masquerade) = masquerade {
            // The input chain is a home router's firewall: what arrives unasked for the router
            // itself is dropped, not answered. Answering (a TCP reset, an ICMP port unreachable)
            // would also make conntrack keep that flow, and its reply tuple would then take the
            // very port the router's own mapping needs for the hole the peer behind it is
            // punching back: the mapping moves and hole punching fails where real routers let
            // it through.
            let rules = format!(
                "table ip lab_nat {{\n chain post {{\n type nat hook postrouting priority 100;\n \
                 oifname \"wan\" {masquerade}\n }}\n \
                 chain input {{\n type filter hook input priority 0;\n \
                 iifname \"wan\" ct state new drop\n }}\n}}\n"
            );
            self.nft(&router, &rules)?;
        } else {
            // Without translation the public side must know the way back to the LAN.
            let lan = format!("10.78.{subnet}.0/24");
            let via = public_addr.to_string();
            for ns in self.public_side.iter().filter(|ns| **ns != router) {
                self.run(ns, &["ip", "route", "add", &lan, "via", &via])?;
            }
            self.routed.push((lan, public_addr));
        }
        Ok(Home {
            router,
            public_addr,
            nat,
            subnet,
            hosts: 1,
        })
    }

    /// A host in `home`'s LAN.
    pub fn home_host(&mut self, home: &mut Home, name: &str) -> Result<Host, String> {
        home.hosts += 1;
        let ns = format!("{}-{name}", self.prefix);
        self.add_ns(&ns)?;
        let addr = Ipv4Addr::new(10, 78, home.subnet, home.hosts);
        self.wire(&ns, "eth0", &home.router, "lan")?;
        self.run(
            &ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        )?;
        self.run(&ns, &["ip", "link", "set", "eth0", "up"])?;
        let gateway = format!("10.78.{}.1", home.subnet);
        self.run(&ns, &["ip", "route", "add", "default", "via", &gateway])?;
        Ok(Host { ns, addr })
    }

    /// Shapes what leaves `ns` through `dev`: at most `rate_kbit` (a `tbf` queue) and, if
    /// `drop_percent` > 0, that share of forwarded and sent packets dropped at random.
    pub fn shape(
        &self,
        ns: &str,
        dev: &str,
        rate_kbit: Option<u32>,
        drop_percent: u32,
    ) -> Result<(), String> {
        if let Some(rate) = rate_kbit {
            let rate = format!("{rate}kbit");
            self.run(
                ns,
                &[
                    "tc", "qdisc", "replace", "dev", dev, "root", "tbf", "rate", &rate, "burst",
                    "32kbit", "latency", "400ms",
                ],
            )?;
        }
        if drop_percent > 0 {
            let drop = format!("oifname \"{dev}\" numgen random mod 100 < {drop_percent} drop");
            let rules = format!(
                "table inet lab_loss {{\n\
                 chain forwarded {{\n type filter hook forward priority 0;\n {drop}\n }}\n\
                 chain sent {{\n type filter hook output priority 0;\n {drop}\n }}\n}}\n"
            );
            self.nft(ns, &rules)?;
        }
        Ok(())
    }

    /// Forgets `home`'s NAT mappings (the router's conntrack entries), as a router that
    /// rebooted would: flows go on under new mappings.
    pub fn rebind(&self, home: &Home) -> Result<(), String> {
        self.run(&home.router, &["conntrack", "-F"])?;
        Ok(())
    }

    /// A TCP listener bound at `port` of `host`, inside its namespace, for this process to
    /// serve (a way into the lab for something running outside it, such as the chain RPC).
    /// Only the socket lives in the lab.
    pub fn listen_tcp(&self, host: &Host, port: u16) -> Result<std::net::TcpListener, String> {
        let addr = std::net::SocketAddr::from((host.addr, port));
        in_namespace(&host.ns, move || {
            let listener =
                std::net::TcpListener::bind(addr).map_err(|e| format!("binding {addr}: {e}"))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("{addr}: {e}"))?;
            Ok(listener)
        })
        .join()
        .map_err(|_| format!("binding {addr} in {} failed", host.ns))?
    }

    /// Runs `task` on a thread of its own that has entered `ns`, on a current-thread tokio
    /// runtime: every socket the task opens lives in that namespace, so in-process drivers (a
    /// `NetActor`, say) can be put in lab hosts. The thread ends when the task does; end it
    /// before the lab drops.
    pub fn spawn_in<F, Fut>(&self, ns: &str, task: F) -> std::thread::JoinHandle<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        in_namespace(ns, move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            runtime.block_on(task());
        })
    }

    /// A command run inside `ns`.
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, program]);
        command
    }

    /// Runs `args` inside `ns`; an error carries its output.
    pub fn run(&self, ns: &str, args: &[&str]) -> Result<Output, String> {
        let output = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .map_err(|e| format!("running {args:?} in {ns}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{args:?} in {ns} failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(output)
    }

    /// Loads an nftables ruleset (file syntax) into `ns`.
    fn nft(&self, ns: &str, ruleset: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running nft in {ns}: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(ruleset.as_bytes())
                .map_err(|e| format!("writing to nft in {ns}: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("running nft in {ns}: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "nft in {ns} refused {ruleset:?}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Ok(())
    }

    fn add_ns(&mut self, ns: &str) -> Result<(), String> {
        root(&["ip", "netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        self.run(ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// A veth pair: `name` inside `ns`, the other end attached to `bridge` in `bridge_ns`.
    fn wire(&mut self, ns: &str, name: &str, bridge_ns: &str, bridge: &str) -> Result<(), String> {
        self.veths += 1;
        let id = format!("{:x}", std::process::id() % 0xffff);
        let (a, b) = (
            format!("l{id}v{}a", self.veths),
            format!("l{id}v{}b", self.veths),
        );
        root(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b])?;
        root(&["ip", "link", "set", &a, "netns", ns])?;
        root(&["ip", "link", "set", &b, "netns", bridge_ns])?;
        self.run(ns, &["ip", "link", "set", &a, "name", name])?;
        self.run(bridge_ns, &["ip", "link", "set", &b, "master", bridge])?;
        self.run(bridge_ns, &["ip", "link", "set", &b, "up"])?;
        Ok(())
    }

    /// Routes `ns` to the LANs routed without translation.
    fn add_routes(&self, ns: &str) -> Result<(), String> {
        for (lan, via) in &self.routed {
            self.run(ns, &["ip", "route", "add", lan, "via", &via.to_string()])?;
        }
        Ok(())
    }

    fn next_public_addr(&mut self) -> Result<Ipv4Addr, String> {
        self.public_hosts += 1;
        if self.public_hosts > 250 {
            return Err("the public segment is full".to_owned());
        }
        Ok(Ipv4Addr::new(
            PUBLIC_NET[0],
            PUBLIC_NET[1],
            0,
            self.public_hosts + 1,
        ))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = root(&["ip", "netns", "del", ns]);
        }
    }
}

fn root(args: &[&str]) -> Result<Output, String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("running {args:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output)
}

/// Deletes the namespaces of labs whose process is gone (killed before it could clean up).
fn sweep_abandoned() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let ns = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = ns.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = root(&["ip", "netns", "del", ns]);
        }
    }
}

/// Runs `work` on a new thread that has entered the network namespace `ns`: a namespace is
/// per thread, so only that thread (and the sockets it opens) moves.
fn in_namespace<T: Send + 'static>(
    ns: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("entering {path}: {e}"));
        work()
    })
}
