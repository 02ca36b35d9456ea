//! Nodes that serve their user's page, for the browser scenarios.

use std::path::{Path, PathBuf};

use chroom_node::{NodeConfig, RunningNode};

use crate::{Chain, tcp_addr, workspace_root};

/// Has a node serve its page on a loopback port of its own.
pub fn serve_page(config: &mut NodeConfig) {
    config.web = Some("127.0.0.1:0".parse().expect("an address"));
}

/// The link (with its key) that opens `node`'s page.
pub fn page_url(node: &RunningNode) -> String {
    node.page_link().expect("the page is served").to_owned()
}

/// Nodes serving pages, acting for the anvil `accounts` given, the first bootstrapping the
/// rest; node `i` keeps its data in `dir/node-i`.
pub async fn page_nodes(chain: &Chain, dir: &Path, accounts: &[usize]) -> Vec<RunningNode> {
    let mut nodes: Vec<RunningNode> = Vec::new();
    let mut boot = Vec::new();
    for (i, &account) in accounts.iter().enumerate() {
        let node = chain
            .node_with(&dir.join(format!("node-{i}")), account, &boot, serve_page)
            .await;
        if boot.is_empty() {
            boot.push(tcp_addr(&node).await);
        }
        nodes.push(node);
    }
    nodes
}

/// Where the scenarios save screenshots (target/screenshots).
pub fn screenshots() -> PathBuf {
    let dir = workspace_root().join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
