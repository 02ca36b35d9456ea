//! `chroom room`: the registry's rooms from the command line.

use chroom_node::admin::{self, RoomAction};
use chroom_types::{Account, HostFallback, Presenting, Role, RoomKind, RoomName, RoomPolicy};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub(crate) enum RoomCommand {
    /// Create a room owned by the config's account.
    Create {
        /// Room name.
        name: RoomName,
        /// conference, audio-space or broadcast.
        #[arg(long, value_enum, default_value = "conference")]
        kind: KindArg,
        /// open, allowlist or token.
        #[arg(long, default_value = "allowlist")]
        policy: String,
        /// ERC-20 or ERC-721 gating the room (with --policy token).
        #[arg(long)]
        token: Option<alloy::primitives::Address>,
        /// Balance that admits (with --policy token). Default 1.
        #[arg(long)]
        min_balance: Option<u64>,
        /// Metadata URI.
        #[arg(long, default_value = "")]
        metadata: String,
    },
    /// Show a room, and an account's standing in it.
    Show {
        /// Room name.
        name: RoomName,
        /// Account to check.
        #[arg(long)]
        account: Option<Account>,
    },
    /// List every room.
    List,
    /// Give an account a role.
    Grant {
        /// Room name.
        name: RoomName,
        /// The account.
        account: Account,
        /// listener, speaker, host or admin.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Take an account's role away.
    Revoke {
        /// Room name.
        name: RoomName,
        /// The account.
        account: Account,
    },
    /// Ban an account from the room.
    Ban {
        /// Room name.
        name: RoomName,
        /// The account.
        account: Account,
    },
    /// Lift a ban.
    Unban {
        /// Room name.
        name: RoomName,
        /// The account.
        account: Account,
    },
    /// Set how nodes assign the room's roles among the members present (the orchestrator).
    Orchestrate {
        /// Room name.
        name: RoomName,
        /// Who hosts while no member with a host role is present.
        #[arg(long, value_enum, default_value = "none")]
        host_fallback: HostFallbackArg,
        /// Members present only when a host passes them the presentation.
        #[arg(long)]
        approval_to_present: bool,
        /// Listeners may step on the stage without a host's invitation.
        #[arg(long)]
        open_stage: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum KindArg {
    Conference,
    AudioSpace,
    Broadcast,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    Listener,
    Speaker,
    Host,
    Admin,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum HostFallbackArg {
    None,
    FirstJoiner,
    HighestRole,
}

impl RoomCommand {
    /// What to ask of the registry.
    pub(crate) fn into_action(self) -> anyhow::Result<RoomAction> {
        Ok(match self {
            Self::Create {
                name,
                kind,
                policy,
                token,
                min_balance,
                metadata,
            } => RoomAction::Create {
                name,
                kind: match kind {
                    KindArg::Conference => RoomKind::Conference,
                    KindArg::AudioSpace => RoomKind::AudioSpace,
                    KindArg::Broadcast => RoomKind::Broadcast,
                },
                policy: admin::join_policy(&policy, token, min_balance)?,
                metadata_uri: metadata,
            },
            Self::Show { name, account } => RoomAction::Show { name, account },
            Self::List => RoomAction::List,
            Self::Grant {
                name,
                account,
                role,
            } => RoomAction::SetRole {
                name,
                account,
                role: Some(match role {
                    RoleArg::Listener => Role::Listener,
                    RoleArg::Speaker => Role::Speaker,
                    RoleArg::Host => Role::Host,
                    RoleArg::Admin => Role::Admin,
                }),
            },
            Self::Revoke { name, account } => RoomAction::SetRole {
                name,
                account,
                role: None,
            },
            Self::Ban { name, account } => RoomAction::Ban { name, account },
            Self::Unban { name, account } => RoomAction::Unban { name, account },
            Self::Orchestrate {
                name,
                host_fallback,
                approval_to_present,
                open_stage,
            } => RoomAction::Orchestrate {
                name,
                policy: RoomPolicy {
                    host_fallback: match host_fallback {
                        HostFallbackArg::None => HostFallback::None,
                        HostFallbackArg::FirstJoiner => HostFallback::FirstJoiner,
                        HostFallbackArg::HighestRole => HostFallback::HighestRole,
                    },
                    presenting: if approval_to_present {
                        Presenting::Approval
                    } else {
                        Presenting::Free
                    },
                    open_stage,
                },
            },
        })
    }
}
