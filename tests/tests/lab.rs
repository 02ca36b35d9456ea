//! The network lab behaves as the NATs and links it stands for: what a UDP reflector on the
//! public segment sees of hosts in each kind of home, that a port-preserving NAT filters
//! strangers, that the random drop rule and the `tbf` rate cost what they say, and that nothing
//! is left behind.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};

use chroom_tests::lab::{Host, Lab, Nat};

/// Answers every datagram on port 9000 with the address and port it came from.
const REFLECTOR: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9000))
while True:
    data, peer = s.recvfrom(2048)
    s.sendto(f"{peer[0]}:{peer[1]}".encode(), peer)
"#;

/// From local port 40000: a datagram to each reflector given (again until answered), then `count` datagrams of
/// `size` bytes to the first, `gap_ms` apart (0: as fast as it can); prints what each reflector saw, how many
/// answers came back, and any datagram from elsewhere.
const CLIENT: &str = r#"
import json, socket, sys, time
reflectors, count, size = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
gap = float(sys.argv[4]) / 1000
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 40000))
s.settimeout(0.3)
seen = {}
for r in reflectors:
    # Asked until answered: a lossy path drops some.
    for _ in range(20):
        s.sendto(b"who", (r, 9000))
        try:
            data, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        if peer[0] == r:
            seen[r] = data.decode()
            break
print(json.dumps({"seen": seen}), flush=True)
payload = b"x" * size
answers, strangers = 0, []
def take(data, peer):
    global answers
    if peer[0] == reflectors[0]:
        answers += 1
    else:
        strangers.append(peer[0])
# Answers are read as they come, so that this socket's buffer never overflows.
s.setblocking(False)
for _ in range(count):
    s.sendto(payload, (reflectors[0], 9000))
    if gap:
        time.sleep(gap)
    while True:
        try:
            take(*s.recvfrom(2048))
        except BlockingIOError:
            break
s.setblocking(True)
s.settimeout(1.5)
try:
    while True:
        take(*s.recvfrom(2048))
except socket.timeout:
    pass
print(json.dumps({"answers": answers, "strangers": strangers}), flush=True)
"#;

fn reflector(lab: &Lab, host: &Host) -> Child {
    lab.command(&host.ns, "python3")
        .args(["-c", REFLECTOR])
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 runs")
}

/// Runs the client in `host` and returns (what each reflector saw, answers, strangers).
fn probe(
    lab: &Lab,
    host: &Host,
    reflectors: &[&Host],
    (count, size, gap_ms): (usize, usize, f64),
) -> (HashMap<String, String>, u64, Vec<String>) {
    let targets: Vec<String> = reflectors.iter().map(|r| r.addr.to_string()).collect();
    let output = lab
        .command(&host.ns, "python3")
        .args([
            "-c",
            CLIENT,
            &targets.join(","),
            &count.to_string(),
            &size.to_string(),
            &gap_ms.to_string(),
        ])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "probe failed: {}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let seen = lines.next().unwrap()["seen"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let end = lines.next().unwrap();
    let strangers = end["strangers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    (seen, end["answers"].as_u64().unwrap(), strangers)
}

fn split(seen: &str) -> (Ipv4Addr, u16) {
    let (addr, port) = seen.split_once(':').unwrap();
    (addr.parse().unwrap(), port.parse().unwrap())
}

#[test]
fn the_lab_translates_filters_drops_and_shapes_as_configured_and_cleans_up() {
    let mut lab = match Lab::new() {
        Ok(lab) => lab,
        Err(e) => panic!("{e}"),
    };
    let (r1, r2, r3) = (
        lab.public_host("r1").unwrap(),
        lab.public_host("r2").unwrap(),
        lab.public_host("r3").unwrap(),
    );
    let mut open = lab.home("open", Nat::None).unwrap();
    let mut kept = lab.home("kept", Nat::PortPreserving).unwrap();
    let mut random = lab.home("random", Nat::Symmetric).unwrap();
    let mut slow = lab.home("slow", Nat::PortPreserving).unwrap();
    let hosts = [
        lab.home_host(&mut open, "open-a").unwrap(),
        lab.home_host(&mut kept, "kept-a").unwrap(),
        lab.home_host(&mut random, "random-a").unwrap(),
        lab.home_host(&mut slow, "slow-a").unwrap(),
    ];
    lab.shape(&kept.router, "wan", None, 20).unwrap();
    lab.shape(&slow.router, "wan", Some(400), 0).unwrap();
    let mut reflectors: Vec<Child> = [&r1, &r2].iter().map(|r| reflector(&lab, r)).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));

    // No NAT: the reflectors see the host itself.
    let (seen, answers, _) = probe(&lab, &hosts[0], &[&r1, &r2], (100, 100, 1.0));
    for r in [&r1, &r2] {
        assert_eq!(
            split(&seen[&r.addr.to_string()]),
            (hosts[0].addr, 40000),
            "{seen:?}"
        );
    }
    assert!(
        answers >= 95,
        "an unshaped path lost {} of 100",
        100 - answers
    );

    // Port-preserving: the router's address, the same port to every destination; a stranger
    // sending to that mapping gets nothing through; one datagram in five is dropped going out
    // (sent 1 ms apart, so that the reflector's socket never overflows).
    let stranger = lab
        .command(&r3.ns, "python3")
        .args([
            "-c",
            &format!(
                "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 for _ in range(30):\n    s.sendto(b'hi',('{}',40000)); time.sleep(0.1)",
                kept.public_addr
            ),
        ])
        .spawn()
        .unwrap();
    let (seen, answers, strangers) = probe(&lab, &hosts[1], &[&r1, &r2], (400, 100, 1.0));
    let mapped: Vec<(Ipv4Addr, u16)> = [&r1, &r2]
        .iter()
        .map(|r| split(&seen[&r.addr.to_string()]))
        .collect();
    assert_eq!(mapped, vec![(kept.public_addr, 40000); 2], "{seen:?}");
    assert!(
        strangers.is_empty(),
        "a stranger got through: {strangers:?}"
    );
    // 400 × 0.8 = 320 expected; the bounds are ± 5 standard deviations.
    assert!(
        (280..=360).contains(&answers),
        "20 % drop going out let {answers} of 400 through"
    );
    let _ = stranger.wait_with_output();

    // Symmetric: the router's address, a different port per destination.
    let (seen, _, _) = probe(&lab, &hosts[2], &[&r1, &r2], (1, 100, 0.0));
    let (a, b) = (
        split(&seen[&r1.addr.to_string()]),
        split(&seen[&r2.addr.to_string()]),
    );
    assert_eq!(
        (a.0, b.0),
        (random.public_addr, random.public_addr),
        "{seen:?}"
    );
    assert_ne!(a.1, b.1, "one mapping for two destinations: {seen:?}");

    // 400 kbit/s: a burst of 200 datagrams of 1 000 bytes mostly does not fit.
    let (_, answers, _) = probe(&lab, &hosts[3], &[&r1], (200, 1000, 0.0));
    assert!(
        answers < 100,
        "400 kbit/s let {answers} of 200 kB through at once"
    );

    // Rebinding: a port-preserving mapping forgotten is made again (same port, it is free).
    lab.rebind(&kept).unwrap();
    let (seen, _, _) = probe(&lab, &hosts[1], &[&r2], (1, 100, 0.0));
    assert_eq!(split(&seen[&r2.addr.to_string()]).0, kept.public_addr);

    for child in &mut reflectors {
        let _ = child.kill();
        let _ = child.wait();
    }
    let prefix = r1.ns.rsplit_once('-').unwrap().0.to_owned();
    drop(lab);
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.lines().any(|l| l.starts_with(&format!("{prefix}-"))),
        "namespaces left behind: {left}"
    );
}
