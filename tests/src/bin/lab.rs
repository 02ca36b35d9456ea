//! `cargo run -p chroom-tests --bin lab -- [KIND ...]`: builds a network lab for a person to try
//! things in — a public segment with one host (`pub`) and one home per KIND (`none`,
//! `port-preserving`, `symmetric`), each with one host — prints how to enter each namespace,
//! and removes everything when Enter is pressed (or the process is interrupted and run again).

use chroom_tests::lab::{Lab, Nat};

fn main() -> Result<(), String> {
    let kinds: Vec<String> = std::env::args().skip(1).collect();
    let kinds = if kinds.is_empty() {
        vec!["port-preserving".to_owned(), "symmetric".to_owned()]
    } else {
        kinds
    };
    let mut lab = Lab::new()?;
    let public = lab.public_host("pub")?;
    println!(
        "public host  {}  ip netns exec {} bash",
        public.addr, public.ns
    );
    for (i, kind) in kinds.iter().enumerate() {
        let nat = match kind.as_str() {
            "none" => Nat::None,
            "port-preserving" => Nat::PortPreserving,
            "symmetric" => Nat::Symmetric,
            other => {
                return Err(format!(
                    "{other:?} is not a home kind: none, port-preserving or symmetric"
                ));
            }
        };
        let mut home = lab.home(&format!("home{i}"), nat)?;
        let host = lab.home_host(&mut home, &format!("home{i}-a"))?;
        println!(
            "home {i} ({kind}, router {} at {})  host {}  ip netns exec {} bash",
            home.router, home.public_addr, host.addr, host.ns
        );
    }
    println!(
        "shape a link: ip netns exec <router> tc qdisc replace dev wan root tbf rate 1mbit burst 32kbit latency 400ms"
    );
    println!("press Enter to remove the lab");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(())
}
