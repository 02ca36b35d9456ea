//! Node configuration: the TOML file, command-line overrides, and the typed configs the crates
//! take.
//!
//! The file is parsed strictly (`deny_unknown_fields`); every error names the file and the key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chroom_media::MediaConfig;
use chroom_net::{KadMode, Multiaddr, NetConfig};
use chroom_room::files::FileLimits;
use chroom_room::relaying::RelayBudget;
use chroom_types::RoomName;
use serde::Deserialize;

/// The TOML file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `[node]`
    #[serde(default)]
    pub node: NodeSection,
    /// `[net]`
    #[serde(default)]
    pub net: NetSection,
    /// `[media]`
    #[serde(default)]
    pub media: MediaSection,
    /// `[log]`
    #[serde(default)]
    pub log: LogSection,
    /// `[registry]`: the chain registry. Absent: the node refuses to start unless
    /// `[node] open_access = true` (development only: no membership checks).
    pub registry: Option<RegistrySection>,
    /// `[identity]`: the account this node acts for. Absent: it proves no account, and nodes
    /// that enforce the registry refuse it.
    pub identity: Option<IdentitySection>,
    /// `[relay]`: this node volunteers upload bandwidth to carry broadcasts. Absent: it relays
    /// nothing.
    pub relay: Option<RelaySection>,
    /// `[web]`: the page and API this node serves its user. Absent: none.
    pub web: Option<WebSection>,
    /// `[files]`: files shared in rooms.
    #[serde(default)]
    pub files: FilesSection,
    /// `[metrics]`: Prometheus `/metrics` and `chroom status`. Absent: not served.
    pub metrics: Option<MetricsSection>,
}

/// `[files]`: files shared in rooms.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSection {
    /// Upload this node spends serving file chunks to members, in kbit/s, so a shared file
    /// cannot crowd a call out of the uplink. Default 32000 (4 MB/s).
    pub serve_kbps: Option<u32>,
    /// Largest file other members share that this node fetches without its user asking
    /// (bytes, or `"8 MiB"`, `"5 MB"`); the page offers larger ones with a download button.
    /// Default 8 MiB.
    pub auto_download_max: Option<ByteSize>,
    /// Space for files other members share, per room; a file that would not fit is not
    /// fetched, and the page says why. This node's own shares do not count. Default 256 MiB.
    pub room_quota: Option<ByteSize>,
    /// Like `room_quota`, for all rooms together. Default 1 GiB.
    pub total_quota: Option<ByteSize>,
    /// Files offered by other members that this node keeps track of per room; further offers
    /// are dropped (and logged). Default 1000.
    pub max_room_files: Option<usize>,
}

/// A number of bytes as written in the file: an integer, or a string with a unit (`"8 MiB"`,
/// `"5MB"`; kB, MB and GB are powers of 1000, KiB, MiB and GiB powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{text:?} is not a size: write a number of bytes, or a number and B, kB, MB, \
                 GB (powers of 1000) or KiB, MiB, GiB (powers of 1024)"
            )
        };
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "mb" => 1000 * 1000,
            "gb" => 1000 * 1000 * 1000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        if let Ok(whole) = number.parse::<u64>() {
            return whole.checked_mul(scale).map(Self).ok_or_else(bad);
        }
        let fraction: f64 = number.parse().map_err(|_| bad())?;
        let bytes = (fraction * scale as f64).round();
        if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        // In range and whole: checked above.
        Ok(Self(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(deserializer) {
            Ok(Written::Bytes(bytes)) => Ok(Self(bytes)),
            Ok(Written::Text(text)) => text.parse().map_err(serde::de::Error::custom),
            Err(_) => Err(serde::de::Error::custom(
                "a size is a number of bytes or a string such as \"8 MiB\"",
            )),
        }
    }
}

/// `[web]`: where the node serves its user's page and API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSection {
    /// HTTP address, e.g. `127.0.0.1:7800`. Keep it on loopback: the page acts for the node's
    /// account, and anyone who can reach it with the page's key can too.
    pub listen: SocketAddr,
    /// Serve on an address other machines can reach (plain HTTP: the page's key crosses the
    /// network readable). Default false: a non-loopback `listen` is refused.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[relay]`: how much this node may upload for the broadcasts it carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySection {
    /// Upload budget in kbit/s.
    pub upload_budget_kbps: u32,
    /// Bitrate of one broadcast stream in kbit/s. Default 1500 (VP8 360p + Opus).
    pub stream_kbps: Option<u32>,
    /// Broadcast rooms to carry from the start, by name.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// What one relayed media path (an allocation for a member behind a NAT no peer can
    /// reach) may relay, both ways together, kbit/s; it counts against the upload budget.
    /// Default four streams' worth: a member's camera and microphone out, two members' in.
    pub allocation_kbps: Option<u32>,
}

/// Relaying, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Children fed per broadcast: the upload budget over the stream bitrate.
    pub capacity: u32,
    /// Rooms carried from the start.
    pub rooms: Vec<RoomName>,
    /// What carrying broadcasts and relayed media paths may cost.
    pub budget: RelayBudget,
}

/// `[registry]`: where the room registry lives.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Address of the `RoomRegistry` contract.
    pub address: String,
    /// How often the chain head is polled. Default 500 ms.
    #[serde(default, with = "humantime_serde")]
    pub poll_interval: Option<Duration>,
    /// How long the node trusts what it cached of the registry while the chain cannot be
    /// reached; after that it admits nobody it would have to check (fail closed). Default 10 min.
    #[serde(default, with = "humantime_serde")]
    pub max_staleness: Option<Duration>,
    /// How long a link to a peer may wait, carrying nothing, for the registry to say whether
    /// that peer may take part; then it closes. Default 10 s.
    #[serde(default, with = "humantime_serde")]
    pub link_check_timeout: Option<Duration>,
    /// Accounts not seen before that the node asks the registry about per second, all peers
    /// together (a burst of five times that is allowed); requests beyond it are refused as
    /// overloaded. Each costs three RPC calls. Default 20.
    pub new_accounts_per_second: Option<u32>,
}

/// How long cached registry verdicts are trusted during an outage unless configured.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_secs(10 * 60);

/// New accounts looked up per second unless configured.
pub const DEFAULT_NEW_ACCOUNTS_PER_SECOND: u32 = 20;

/// How long a link waits for its peer's verdict unless configured.
pub const DEFAULT_LINK_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The registry a node checks rooms against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// JSON-RPC endpoint.
    pub rpc_url: String,
    /// Contract address.
    pub address: alloy::primitives::Address,
    /// Head polling period.
    pub poll_interval: Duration,
    /// How long cached verdicts are trusted while the chain cannot be reached.
    pub max_staleness: Duration,
    /// How long a link waits, carrying nothing, for its peer's verdict before it closes.
    pub link_check_timeout: Duration,
    /// New accounts looked up per second, all peers together.
    pub new_accounts_per_second: u32,
}

/// `[identity]`: where the account key comes from. Exactly one of the two sources.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    /// File holding the account's secp256k1 private key as hex (mode 0600).
    pub account_key_file: Option<PathBuf>,
    /// Environment variable holding the key as hex.
    pub account_key_env: Option<String>,
    /// How long a signed identity binding stays valid. Default 24 h.
    #[serde(default, with = "humantime_serde")]
    pub binding_ttl: Option<Duration>,
}

/// `[node]`: where the node keeps its state.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Directory for the node key and the store. Relative paths are relative to the working
    /// directory. Default `.chroom/node`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Development only: no registry, every peer may do everything. Default false: a node
    /// without `[registry]` refuses to start. Contradicts a `[registry]` section.
    #[serde(default)]
    pub open_access: bool,
    /// Start even if `node.key` or the `[identity]` key file can be read by group or others,
    /// for filesystems without Unix permissions (where every file looks open). Default false:
    /// such a key file stops the start until it is `chmod 600`.
    #[serde(default)]
    pub allow_open_key_files: bool,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            open_access: false,
            allow_open_key_files: false,
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from(".chroom/node")
}

/// `[net]`: libp2p.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetSection {
    /// Multiaddrs to listen on. Default TCP and QUIC on 127.0.0.1, any port.
    pub listen: Option<Vec<String>>,
    /// Multiaddrs of peers to dial at start (`/p2p/<PeerId>` suffix recommended).
    #[serde(default)]
    pub bootstrap: Vec<String>,
    /// `server` (default), `client` or `auto`.
    #[serde(default)]
    pub kad_mode: KadModeSetting,
    /// End-to-end limit of one signaling request. Default 10 s.
    #[serde(default, with = "humantime_serde")]
    pub signal_timeout: Option<Duration>,
    /// Serve circuit relay v2 reservations, so nodes behind NATs can be reached through this
    /// one (signaling only: circuits close after 2 min or 128 KiB). For nodes on a public
    /// address: bootstrap nodes, relayers. Default false.
    #[serde(default)]
    pub relay_service: bool,
    /// Count private addresses (10.x, 192.168.x, loopback) as reachable when nodes check each
    /// other's reachability (AutoNAT). Only for a LAN-only network or a lab: on the internet a
    /// neighbour on the same LAN would confirm a node behind NAT as public. Default false.
    #[serde(default)]
    pub allow_private_addresses: bool,
}

/// Kademlia mode as written in the file.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KadModeSetting {
    /// Serve the DHT while reachable from the internet (AutoNAT), only query otherwise.
    Auto,
    /// Query only.
    Client,
    /// Serve the DHT.
    #[default]
    Server,
}

/// `[media]`: the WebRTC socket.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSection {
    /// UDP address for all WebRTC links. Default `0.0.0.0:0`: the page is offered this
    /// machine's interface addresses (Firefox will not use loopback ones).
    pub bind: Option<SocketAddr>,
    /// IPs to offer other nodes as ICE host candidates. Default: the bound IP (127.0.0.1 for a
    /// wildcard).
    #[serde(default)]
    pub advertise: Vec<IpAddr>,
    /// Most WebRTC links at once. Default 64.
    pub max_links: Option<usize>,
    /// Media sockets (`ip:port`) of public nodes to ask, by STUN Binding, where a NAT maps
    /// this node's socket; two or more also tell a symmetric NAT. Default none.
    #[serde(default)]
    pub stun_servers: Vec<SocketAddr>,
    /// Estimate each conference link's bandwidth to other nodes (TWCC feedback): it picks the
    /// simulcast layer each member gets, and is reported in `/metrics`. Default true.
    pub bandwidth_estimation: Option<bool>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// `tracing` filter, e.g. `chroom=debug,libp2p=info`. Default `chroom=info`; `RUST_LOG`
    /// overrides it.
    pub filter: Option<String>,
}

/// Overrides from the command line, applied on top of the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// Replaces `node.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Replaces `net.listen`.
    pub listen: Vec<String>,
    /// Added to `net.bootstrap`.
    pub bootstrap: Vec<String>,
}

/// A configuration error: which file, which key, what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    /// The config file (or `<command line>`).
    pub file: String,
    /// What is wrong, naming the key.
    pub message: String,
}

/// Where the account key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKeySource {
    /// A file of hex.
    File(PathBuf),
    /// An environment variable of hex.
    Env(String),
}

/// The account a node acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Where the key comes from.
    pub key: AccountKeySource,
    /// Validity of each signed binding.
    pub binding_ttl: Duration,
}

/// Whether a key file that group or others can read stops the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OpenKeyFiles {
    /// Use it (with a warning): for filesystems without Unix permissions.
    Allow,
    /// Refuse to start until it is `chmod 600`.
    #[default]
    Refuse,
}

/// Everything a node needs, validated.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the key and store live.
    pub data_dir: PathBuf,
    /// libp2p settings.
    pub net: NetConfig,
    /// WebRTC settings.
    pub media: MediaConfig,
    /// Log filter.
    pub log_filter: String,
    /// The account this node acts for, if any.
    pub identity: Option<IdentityConfig>,
    /// The registry rooms are checked against; `None` needs `open_access`.
    pub registry: Option<RegistryConfig>,
    /// Development only: no registry, every peer may do everything. A node starts only with
    /// exactly one of this and `registry` (see [`NodeConfig::check_access`]).
    pub open_access: bool,
    /// Whether `node.key` and the account key file may be readable by others.
    pub open_key_files: OpenKeyFiles,
    /// Relaying of broadcasts; `None` relays nothing.
    pub relay: Option<RelayConfig>,
    /// Where the user's page is served; `None` serves none.
    pub web: Option<SocketAddr>,
    /// Upload spent serving file chunks, kbit/s.
    pub file_serve_kbps: u32,
    /// Which files other members share this node fetches, and how much it keeps.
    pub file_limits: FileLimits,
    /// Where `/metrics` and `/status` are served; `None` serves neither.
    pub metrics: Option<SocketAddr>,
}

/// Upload spent serving file chunks when the config does not say: 4 MB/s.
pub const DEFAULT_FILE_SERVE_KBPS: u32 = 32_000;

impl NodeConfig {
    /// Reads and validates `path`, then applies `overrides`.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file, overrides)
    }

    /// Parses config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str, overrides: &Overrides) -> Result<Self, ConfigError> {
        let parsed: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_owned(),
            // toml's message quotes the offending line, so the key is named, and says what is
            // expected instead.
            message: e.to_string().trim_end().to_owned(),
        })?;
        Self::from_file(parsed, file, overrides)
    }

    /// Validates a parsed file.
    pub fn from_file(
        parsed: FileConfig,
        file: &str,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let error = |message: String| ConfigError {
            file: file.to_owned(),
            message,
        };
        let cli_error = |message: String| ConfigError {
            file: "<command line>".to_owned(),
            message,
        };
        let mut net = NetConfig::default();
        if let Some(listen) = &parsed.net.listen {
            net.listen = parse_addrs(listen, "net.listen").map_err(error)?;
        }
        if !overrides.listen.is_empty() {
            net.listen = parse_addrs(&overrides.listen, "--listen").map_err(cli_error)?;
        }
        if net.listen.is_empty() {
            return Err(error("net.listen: at least one address is needed".into()));
        }
        net.bootstrap = parse_addrs(&parsed.net.bootstrap, "net.bootstrap").map_err(error)?;
        net.bootstrap
            .extend(parse_addrs(&overrides.bootstrap, "--bootstrap").map_err(cli_error)?);
        net.kad_mode = match parsed.net.kad_mode {
            KadModeSetting::Auto => KadMode::Auto,
            KadModeSetting::Client => KadMode::Client,
            KadModeSetting::Server => KadMode::Server,
        };
        if let Some(timeout) = parsed.net.signal_timeout {
            if timeout.is_zero() {
                return Err(error("net.signal_timeout: must be more than zero".into()));
            }
            net.signal_timeout = timeout;
        }
        net.relay_service = parsed.net.relay_service;
        net.allow_private_addresses = parsed.net.allow_private_addresses;

        let mut media = MediaConfig::default();
        if let Some(bind) = parsed.media.bind {
            media.bind = bind;
        }
        media.advertise = parsed.media.advertise;
        media.stun_servers = parsed.media.stun_servers;
        if let Some(estimate) = parsed.media.bandwidth_estimation {
            media.bandwidth_estimation = estimate;
        }
        if let Some(max_links) = parsed.media.max_links {
            if max_links == 0 {
                return Err(error("media.max_links: must be at least 1".into()));
            }
            media.max_links = max_links;
        }

        let identity = parsed
            .identity
            .map(|section| {
                let key = match (section.account_key_file, section.account_key_env) {
                    (Some(file), None) => AccountKeySource::File(file),
                    (None, Some(var)) => AccountKeySource::Env(var),
                    _ => {
                        return Err(error(
                            "identity: set exactly one of account_key_file and account_key_env"
                                .into(),
                        ));
                    }
                };
                let binding_ttl = section.binding_ttl.unwrap_or(DEFAULT_BINDING_TTL);
                if binding_ttl < MIN_BINDING_TTL {
                    return Err(error(format!(
                        "identity.binding_ttl: must be at least {}",
                        humantime::format_duration(MIN_BINDING_TTL)
                    )));
                }
                Ok(IdentityConfig { key, binding_ttl })
            })
            .transpose()?;

        let registry = parsed
            .registry
            .map(|section| {
                let address = section.address.parse().map_err(|_| {
                    error(format!(
                        "registry.address: {:?} is not a contract address (0x and 40 hex digits)",
                        section.address
                    ))
                })?;
                let max_staleness = section.max_staleness.unwrap_or(DEFAULT_MAX_STALENESS);
                if max_staleness.is_zero() {
                    return Err(error("registry.max_staleness: must be above 0".into()));
                }
                let link_check_timeout = section
                    .link_check_timeout
                    .unwrap_or(DEFAULT_LINK_CHECK_TIMEOUT);
                if link_check_timeout.is_zero() {
                    return Err(error("registry.link_check_timeout: must be above 0".into()));
                }
                let new_accounts_per_second = section
                    .new_accounts_per_second
                    .unwrap_or(DEFAULT_NEW_ACCOUNTS_PER_SECOND);
                if new_accounts_per_second == 0 {
                    return Err(error(
                        "registry.new_accounts_per_second: must be above 0 (nobody new could join)"
                            .into(),
                    ));
                }
                if !section.rpc_url.starts_with("http://")
                    && !section.rpc_url.starts_with("https://")
                {
                    return Err(error(format!(
                        "registry.rpc_url: {:?} is not an http(s) url",
                        section.rpc_url
                    )));
                }
                Ok(RegistryConfig {
                    rpc_url: section.rpc_url,
                    address,
                    poll_interval: section.poll_interval.unwrap_or(Duration::from_millis(500)),
                    max_staleness,
                    link_check_timeout,
                    new_accounts_per_second,
                })
            })
            .transpose()?;

        let relay = parsed
            .relay
            .map(|section| {
                let stream_kbps = section.stream_kbps.unwrap_or(DEFAULT_STREAM_KBPS);
                if stream_kbps == 0 {
                    return Err(error("relay.stream_kbps: must be more than zero".into()));
                }
                let capacity = section.upload_budget_kbps / stream_kbps;
                if capacity == 0 {
                    return Err(error(format!(
                        "relay.upload_budget_kbps: {} kbit/s cannot carry one {stream_kbps} kbit/s stream",
                        section.upload_budget_kbps
                    )));
                }
                let rooms = section
                    .rooms
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        name.parse::<RoomName>()
                            .map_err(|e| error(format!("relay.rooms[{i}]: {e}")))
                    })
                    .collect::<Result<_, _>>()?;
                let allocation_kbps = section.allocation_kbps.unwrap_or(4 * stream_kbps);
                if allocation_kbps == 0 || allocation_kbps > section.upload_budget_kbps {
                    return Err(error(format!(
                        "relay.allocation_kbps: {allocation_kbps} kbit/s must be above zero and \
                         within the upload budget ({} kbit/s)",
                        section.upload_budget_kbps
                    )));
                }
                let budget = RelayBudget {
                    upload_kbps: section.upload_budget_kbps,
                    stream_kbps,
                    allocation_kbps,
                };
                Ok(RelayConfig {
                    capacity,
                    rooms,
                    budget,
                })
            })
            .transpose()?;

        let data_dir = overrides.data_dir.clone().unwrap_or(parsed.node.data_dir);
        if data_dir.as_os_str().is_empty() {
            return Err(error("node.data_dir: must not be empty".into()));
        }
        let config = Self {
            data_dir,
            net,
            media,
            log_filter: parsed
                .log
                .filter
                .unwrap_or_else(|| "chroom=info".to_owned()),
            identity,
            registry,
            open_access: parsed.node.open_access,
            open_key_files: if parsed.node.allow_open_key_files {
                OpenKeyFiles::Allow
            } else {
                OpenKeyFiles::Refuse
            },
            relay,
            web: match parsed.web {
                Some(web) if !web.listen.ip().is_loopback() && !web.allow_remote => {
                    return Err(error(format!(
                        "web.listen: {} can be reached from other machines, and the page acts \
                         for this node's account; serve it on loopback, or set \
                         web.allow_remote = true",
                        web.listen
                    )));
                }
                Some(web) => Some(web.listen),
                None => None,
            },
            file_serve_kbps: match parsed.files.serve_kbps {
                Some(0) => return Err(error("files.serve_kbps: must be above 0".into())),
                Some(kbps) => kbps,
                None => DEFAULT_FILE_SERVE_KBPS,
            },
            file_limits: file_limits(&parsed.files),
            metrics: metrics_listen(parsed.metrics).map_err(error)?,
        };
        config.check_access().map_err(error)?;
        Ok(config)
    }

    /// Refuses a node that would admit everyone without being told to (fail closed), and one
    /// told both to check the registry and to admit everyone. [`RunningNode::start`] checks
    /// this too, for configs built in code.
    ///
    /// [`RunningNode::start`]: crate::RunningNode::start
    pub fn check_access(&self) -> Result<(), String> {
        match (&self.registry, self.open_access) {
            (Some(_), false) | (None, true) => Ok(()),
            (None, false) => Err(
                "node.open_access: without [registry] nothing checks who may \
                 join a room or what they may do in it; add a [registry] section (rpc_url, \
                 address), or, for development only, set [node] open_access = true (every peer \
                 may do everything)"
                    .into(),
            ),
            (Some(_), true) => Err("node.open_access: true contradicts the [registry] section \
                 (a node either checks rooms against the registry or admits every peer); \
                 remove one"
                .into()),
        }
    }

    /// A config for tests and benchmarks: everything on loopback with OS-chosen ports. It has
    /// no registry and `open_access` unset, so it does not start until one of them is set.
    pub fn loopback(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            net: NetConfig::default(),
            media: MediaConfig::default(),
            log_filter: "chroom=info".to_owned(),
            identity: None,
            registry: None,
            open_access: false,
            open_key_files: OpenKeyFiles::Refuse,
            relay: None,
            web: None,
            file_serve_kbps: DEFAULT_FILE_SERVE_KBPS,
            file_limits: FileLimits::default(),
            metrics: None,
        }
    }
}

/// `[files]`'s bounds, defaults filled in. Every value is usable: 0 means fetch nothing
/// unasked (`auto_download_max`) or nothing at all (a quota), or track no offers.
fn file_limits(section: &FilesSection) -> FileLimits {
    let defaults = FileLimits::default();
    let size = |set: Option<ByteSize>, default: u64| set.map_or(default, |size| size.0);
    FileLimits {
        auto_download_max: size(section.auto_download_max, defaults.auto_download_max),
        room_quota: size(section.room_quota, defaults.room_quota),
        total_quota: size(section.total_quota, defaults.total_quota),
        max_room_files: section.max_room_files.unwrap_or(defaults.max_room_files),
    }
}

/// `[metrics]`: where a node serves Prometheus `/metrics` and the `/status` that
/// `chroom status` reads (docs/OPERATIONS.md lists the metrics).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    /// HTTP address, e.g. `127.0.0.1:9464`. Both endpoints are unauthenticated and read-only;
    /// they name the rooms this node is in and its peers.
    pub listen: SocketAddr,
    /// Serve on an address other machines can reach (for a Prometheus server elsewhere:
    /// anyone who can reach it learns which rooms this node is in). Default false: a
    /// non-loopback `listen` is refused.
    #[serde(default)]
    pub allow_remote: bool,
}

/// `[metrics]`'s address, refusing one other machines can reach unless allowed.
fn metrics_listen(section: Option<MetricsSection>) -> Result<Option<SocketAddr>, String> {
    let Some(section) = section else {
        return Ok(None);
    };
    if !section.listen.ip().is_loopback() && !section.allow_remote {
        return Err(format!(
            "metrics.listen: {} can be reached from other machines, and /metrics and /status \
             tell anyone who asks which rooms this node is in; serve them on loopback, or set \
             metrics.allow_remote = true",
            section.listen
        ));
    }
    Ok(Some(section.listen))
}

/// Bitrate of one broadcast stream when the config does not say.
const DEFAULT_STREAM_KBPS: u32 = 1500;

/// Default validity of a signed identity binding.
const DEFAULT_BINDING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Shorter bindings would expire between signing and first use on a slow network.
const MIN_BINDING_TTL: Duration = Duration::from_secs(60);

fn parse_addrs(values: &[String], key: &str) -> Result<Vec<Multiaddr>, String> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            value
                .parse()
                .map_err(|e| format!("{key}[{i}]: {value:?} is not a multiaddr ({e})"))
        })
        .collect()
}

#[cfg(test)]
mod tests;
