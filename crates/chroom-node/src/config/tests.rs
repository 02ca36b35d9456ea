use super::*;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, "dev.toml", &Overrides::default())
}

/// A node without a registry must say it admits everyone.
const OPEN: &str = "[node]\nopen_access = true\n";

/// `text` as a development config: no registry, `[node] open_access = true`.
fn parse_open(text: &str) -> Result<NodeConfig, ConfigError> {
    parse(&format!("{OPEN}{text}"))
}

const REGISTRY: &str = "[registry]\nrpc_url = \"http://127.0.0.1:8545\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";

#[test]
fn empty_file_gives_loopback_defaults() {
    let config = parse_open("").unwrap();
    assert_eq!(config.net.listen.len(), 2);
    assert_eq!(config.data_dir, PathBuf::from(".chroom/node"));
}

#[test]
fn unknown_key_names_key_and_file() {
    let err = parse("[net]\nlisn = []\n").unwrap_err().to_string();
    assert!(err.starts_with("dev.toml: "), "{err}");
    assert!(err.contains("lisn"), "{err}");
}

#[test]
fn unknown_section_is_refused() {
    let err = parse("[nett]\n").unwrap_err().to_string();
    assert!(err.contains("nett"), "{err}");
}

#[test]
fn bad_value_names_key_and_file() {
    let err = parse("[net]\nkad_mode = \"sometimes\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev.toml") && err.contains("kad_mode"),
        "{err}"
    );
    let err = parse("[net]\nlisten = [\"not an addr\"]\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev.toml") && err.contains("net.listen[0]"),
        "{err}"
    );
    let err = parse("[media]\nbind = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bind"), "{err}");
    let err = parse("[net]\nsignal_timeout = \"soon\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("signal_timeout"), "{err}");
}

#[test]
fn identity_needs_exactly_one_key_source() {
    let config = parse_open("[identity]\naccount_key_env = \"KEY\"\n").unwrap();
    assert_eq!(
        config.identity.unwrap().key,
        AccountKeySource::Env("KEY".into())
    );
    for bad in [
        "[identity]\n",
        "[identity]\naccount_key_env = \"K\"\naccount_key_file = \"f\"\n",
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("dev.toml") && err.contains("identity"),
            "{err}"
        );
    }
    let err = parse("[identity]\naccount_key_env = \"K\"\nbinding_ttl = \"1s\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("identity.binding_ttl"), "{err}");
}

#[test]
fn registry_section_is_validated() {
    let ok = "[registry]\nrpc_url = \"http://127.0.0.1:8545\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    assert!(parse(ok).unwrap().registry.is_some());
    let err = parse("[registry]\nrpc_url = \"http://x\"\naddress = \"0x12\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dev.toml") && err.contains("registry.address"),
        "{err}"
    );
    let err = parse("[registry]\nrpc_url = \"ftp://x\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("registry.rpc_url"), "{err}");
}

#[test]
fn overrides_apply() {
    let overrides = Overrides {
        data_dir: Some("/tmp/x".into()),
        listen: vec!["/ip4/127.0.0.1/tcp/5000".into()],
        bootstrap: vec!["/ip4/127.0.0.1/tcp/4001".into()],
    };
    let config = NodeConfig::parse(OPEN, "dev.toml", &overrides).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.net.listen.len(), 1);
    assert_eq!(config.net.bootstrap.len(), 1);
    let bad = Overrides {
        bootstrap: vec!["nope".into()],
        ..Overrides::default()
    };
    let err = NodeConfig::parse(OPEN, "dev.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--bootstrap[0]"), "{err}");
}

#[test]
fn relay_capacity_is_the_budget_over_the_stream_rate() {
    let relay = |section: &str| {
        let text = format!("{OPEN}[net]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n[relay]\n{section}");
        NodeConfig::parse(&text, "relay.toml", &Overrides::default())
    };
    let config =
        relay("upload_budget_kbps = 10000\nstream_kbps = 2500\nrooms = [\"stage\"]").unwrap();
    let relay_config = config.relay.unwrap();
    assert_eq!(relay_config.capacity, 4);
    assert_eq!(
        relay_config.rooms,
        vec!["stage".parse::<RoomName>().unwrap()]
    );
    let err = relay("upload_budget_kbps = 1000").unwrap_err().to_string();
    assert!(err.contains("relay.upload_budget_kbps"), "{err}");
    let err = relay("upload_budget_kbps = 9000\nrooms = [\"\"]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("relay.rooms[0]"), "{err}");
}

#[test]
fn file_serving_rate_defaults_and_must_be_positive() {
    assert_eq!(
        parse_open("").unwrap().file_serve_kbps,
        DEFAULT_FILE_SERVE_KBPS
    );
    assert_eq!(
        parse_open("[files]\nserve_kbps = 8000\n")
            .unwrap()
            .file_serve_kbps,
        8000
    );
    let err = parse("[files]\nserve_kbps = 0\n").unwrap_err().to_string();
    assert!(err.contains("files.serve_kbps"), "{err}");
    let err = parse("[files]\nserve_kbps = -1\n").unwrap_err().to_string();
    assert!(err.contains("serve_kbps"), "{err}");
}

#[test]
fn file_bounds_default_and_take_sizes_with_units() {
    assert_eq!(parse_open("").unwrap().file_limits, FileLimits::default());
    let limits = parse_open(
        "[files]\nauto_download_max = \"5 MB\"\nroom_quota = \"1.5GiB\"\n\
         total_quota = 4096\nmax_room_files = 10\n",
    )
    .unwrap()
    .file_limits;
    assert_eq!(
        limits,
        FileLimits {
            auto_download_max: 5_000_000,
            room_quota: 3 << 29,
            total_quota: 4096,
            max_room_files: 10,
        }
    );
    assert_eq!("8MiB".parse(), Ok(ByteSize(8 << 20)));
    assert_eq!(" 512 kb ".parse(), Ok(ByteSize(512_000)));
    assert_eq!("0".parse(), Ok(ByteSize(0)));
    for bad in [
        "",
        "MB",
        "8 furlongs",
        "-1 MB",
        "1.2.3 kB",
        "99999999999999999999 GB",
    ] {
        assert!(bad.parse::<ByteSize>().is_err(), "{bad:?}");
    }
    let err = parse_open("[files]\nroom_quota = \"lots\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("room_quota") && err.contains("\"lots\" is not a size"),
        "{err}"
    );
    let err = parse_open("[files]\ntotal_quota = -5\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("total_quota"), "{err}");
}

#[test]
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-config");
    let mut parsed = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let config =
                NodeConfig::load(&path, &Overrides::default()).unwrap_or_else(|e| panic!("{e}"));
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            parsed.insert(name, config);
        }
    }
    for name in ["dev.toml", "production.toml", "relayer.toml"] {
        assert!(parsed.contains_key(name), "node-config/{name} is missing");
    }
    // The template for a public host checks the registry; only development admits everyone.
    let production = &parsed["production.toml"];
    assert!(production.registry.is_some() && !production.open_access);
    assert!(parsed["dev.toml"].open_access);
    // Operators of public hosts and relayers get `/metrics` and `chroom status`, on loopback.
    for name in ["production.toml", "relayer.toml"] {
        let metrics = parsed[name]
            .metrics
            .unwrap_or_else(|| panic!("node-config/{name} has no [metrics]"));
        assert!(metrics.ip().is_loopback(), "{name}: {metrics}");
    }
    assert_eq!(parsed["dev.toml"].metrics, None);
    // Public hosts and relayers give nodes behind NATs a relay; a home node does not.
    assert!(production.net.relay_service && parsed["relayer.toml"].net.relay_service);
    assert!(!parsed["dev.toml"].net.relay_service);
    for config in parsed.values() {
        assert_eq!(config.open_key_files, OpenKeyFiles::Refuse);
    }
}

#[test]
fn nat_settings_reach_the_net_config() {
    let config = parse_open("").unwrap();
    assert!(!config.net.relay_service && !config.net.allow_private_addresses);
    let config =
        parse_open("[net]\nrelay_service = true\nallow_private_addresses = true\n").unwrap();
    assert!(config.net.relay_service && config.net.allow_private_addresses);
}

#[test]
fn a_node_without_a_registry_must_be_told_to_admit_everyone() {
    let err = parse("").unwrap_err().to_string();
    assert!(err.starts_with("dev.toml: node.open_access"), "{err}");
    assert!(err.contains("[registry]"), "{err}");
    assert!(err.contains("open_access = true"), "{err}");
    let err = parse("[node]\nopen_access = false\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("open_access = true"), "{err}");

    let open = parse_open("").unwrap();
    assert!(open.open_access && open.registry.is_none());
    assert_eq!(open.check_access(), Ok(()));
    let checked = parse(REGISTRY).unwrap();
    assert!(!checked.open_access && checked.registry.is_some());

    let err = parse_open(REGISTRY).unwrap_err().to_string();
    assert!(
        err.contains("node.open_access") && err.contains("contradicts"),
        "{err}"
    );
}

#[test]
fn configs_built_in_code_are_checked_too() {
    let mut config = NodeConfig::loopback(PathBuf::from("/tmp/x"));
    assert!(config.check_access().unwrap_err().contains("open_access"));
    config.open_access = true;
    assert_eq!(config.check_access(), Ok(()));
    config.registry = parse(REGISTRY).unwrap().registry;
    assert!(config.check_access().unwrap_err().contains("contradicts"));
}

#[test]
fn open_key_files_are_refused_unless_allowed() {
    assert_eq!(parse_open("").unwrap().open_key_files, OpenKeyFiles::Refuse);
    let allowed = parse("[node]\nopen_access = true\nallow_open_key_files = true\n").unwrap();
    assert_eq!(allowed.open_key_files, OpenKeyFiles::Allow);
}

#[test]
fn the_page_is_served_on_loopback_unless_remote_is_allowed() {
    let local = parse_open("[web]\nlisten = \"127.0.0.1:7800\"\n").unwrap();
    assert_eq!(local.web, Some("127.0.0.1:7800".parse().unwrap()));
    let error = parse_open("[web]\nlisten = \"0.0.0.0:7800\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("allow_remote"), "{error}");
    let remote = parse_open("[web]\nlisten = \"0.0.0.0:7800\"\nallow_remote = true\n").unwrap();
    assert_eq!(remote.web, Some("0.0.0.0:7800".parse().unwrap()));
}

#[test]
fn cached_verdicts_are_trusted_for_ten_minutes_of_outage_unless_configured() {
    let base = "[registry]\nrpc_url = \"http://127.0.0.1:8545\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    let default = parse(base).unwrap().registry.unwrap();
    assert_eq!(default.max_staleness, DEFAULT_MAX_STALENESS);
    assert_eq!(DEFAULT_MAX_STALENESS, Duration::from_secs(600));
    let set = parse(&format!("{base}max_staleness = \"90s\"\n")).unwrap();
    assert_eq!(set.registry.unwrap().max_staleness, Duration::from_secs(90));
    let zero = parse(&format!("{base}max_staleness = \"0s\"\n"))
        .unwrap_err()
        .to_string();
    assert!(zero.contains("registry.max_staleness"), "{zero}");
}

#[test]
fn links_wait_ten_seconds_for_a_verdict_unless_configured() {
    let base = "[registry]\nrpc_url = \"http://127.0.0.1:8545\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    let default = parse(base).unwrap().registry.unwrap();
    assert_eq!(default.link_check_timeout, Duration::from_secs(10));
    let set = parse(&format!("{base}link_check_timeout = \"3s\"\n")).unwrap();
    assert_eq!(
        set.registry.unwrap().link_check_timeout,
        Duration::from_secs(3)
    );
    let zero = parse(&format!("{base}link_check_timeout = \"0s\"\n"))
        .unwrap_err()
        .to_string();
    assert!(zero.contains("registry.link_check_timeout"), "{zero}");
}

#[test]
fn new_accounts_are_looked_up_twenty_a_second_unless_configured() {
    let base = "[registry]\nrpc_url = \"http://127.0.0.1:8545\"\naddress = \"0x5FbDB2315678afecb367f032d93F642f64180aa3\"\n";
    let default = parse(base).unwrap().registry.unwrap();
    assert_eq!(default.new_accounts_per_second, 20);
    let set = parse(&format!("{base}new_accounts_per_second = 100\n")).unwrap();
    assert_eq!(set.registry.unwrap().new_accounts_per_second, 100);
    let zero = parse(&format!("{base}new_accounts_per_second = 0\n"))
        .unwrap_err()
        .to_string();
    assert!(zero.contains("registry.new_accounts_per_second"), "{zero}");
}

#[test]
fn stun_servers_are_socket_addresses() {
    let config =
        parse_open("[media]\nstun_servers = [\"10.77.0.2:4002\", \"[2001:db8::1]:4002\"]\n")
            .unwrap();
    assert_eq!(
        config.media.stun_servers,
        [
            "10.77.0.2:4002".parse().unwrap(),
            "[2001:db8::1]:4002".parse().unwrap()
        ]
    );
    let err = parse_open("[media]\nstun_servers = [\"10.77.0.2\"]\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("stun_servers"), "{err}");
}

#[test]
fn metrics_are_off_unless_configured_and_on_loopback_unless_remote_is_allowed() {
    assert_eq!(parse_open("").unwrap().metrics, None);
    let local = parse_open("[metrics]\nlisten = \"127.0.0.1:9464\"\n").unwrap();
    assert_eq!(local.metrics, Some("127.0.0.1:9464".parse().unwrap()));
    let v6 = parse_open("[metrics]\nlisten = \"[::1]:9464\"\n").unwrap();
    assert_eq!(v6.metrics, Some("[::1]:9464".parse().unwrap()));
    let error = parse_open("[metrics]\nlisten = \"0.0.0.0:9464\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("dev.toml: metrics.listen: 0.0.0.0:9464")
            && error.contains("allow_remote"),
        "{error}"
    );
    let remote = parse_open("[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n").unwrap();
    assert_eq!(remote.metrics, Some("0.0.0.0:9464".parse().unwrap()));
}

#[test]
fn bad_metrics_sections_name_the_key() {
    let missing = parse_open("[metrics]\nallow_remote = true\n")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("listen"), "{missing}");
    let bad_addr = parse_open("[metrics]\nlisten = \"localhost:9464\"\n")
        .unwrap_err()
        .to_string();
    assert!(
        bad_addr.contains("dev.toml") && bad_addr.contains("listen"),
        "{bad_addr}"
    );
    let unknown = parse_open("[metrics]\nlisten = \"127.0.0.1:9464\"\npath = \"/m\"\n")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("path"), "{unknown}");
}
