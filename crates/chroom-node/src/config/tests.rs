use super::*;

fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    NodeConfig::parse(text, "dev.toml", &Overrides::default())
}

#[test]
fn empty_file_gives_loopback_defaults() {
    let config = parse("").unwrap();
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
    let config = parse("[identity]\naccount_key_env = \"KEY\"\n").unwrap();
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
    let config = NodeConfig::parse("", "dev.toml", &overrides).unwrap();
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.net.listen.len(), 1);
    assert_eq!(config.net.bootstrap.len(), 1);
    let bad = Overrides {
        bootstrap: vec!["nope".into()],
        ..Overrides::default()
    };
    let err = NodeConfig::parse("", "dev.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--bootstrap[0]"), "{err}");
}

#[test]
fn relay_capacity_is_the_budget_over_the_stream_rate() {
    let relay = |section: &str| {
        let text = format!("[net]\nlisten = [\"/ip4/127.0.0.1/tcp/0\"]\n[relay]\n{section}");
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
    assert_eq!(parse("").unwrap().file_serve_kbps, DEFAULT_FILE_SERVE_KBPS);
    assert_eq!(
        parse("[files]\nserve_kbps = 8000\n")
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
fn shipped_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-config");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            NodeConfig::load(&path, &Overrides::default()).unwrap();
        }
    }
}

#[test]
fn the_page_is_served_on_loopback_unless_remote_is_allowed() {
    let local = parse("[web]\nlisten = \"127.0.0.1:7800\"\n").unwrap();
    assert_eq!(local.web, Some("127.0.0.1:7800".parse().unwrap()));
    let error = parse("[web]\nlisten = \"0.0.0.0:7800\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("allow_remote"), "{error}");
    let remote = parse("[web]\nlisten = \"0.0.0.0:7800\"\nallow_remote = true\n").unwrap();
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
