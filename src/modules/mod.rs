//! Modules: one file each, each answering two questions separately — what is
//! on the host now (a facts script, one round trip) and what must change
//! (a list of [`Change`]s with their exact steps).

mod apt;
mod apt_security;
mod directory;
mod download;
mod files;
#[cfg(test)]
mod hostile;
mod login_defs;
mod monitor_binary;
mod node;
pub use monitor_binary::{release_file, sum_for, MONITOR_ARCHS};
mod conversation_replica;
mod openclaw;
mod sshd;
pub mod switches;
#[cfg(all(test, feature = "system-tests"))]
mod symlinks;
mod systemd;
mod tailscale;
#[cfg(test)]
pub(crate) mod testkit;
mod ufw;
mod user;
mod workspace;

use serde::Deserialize;

use crate::engine::{Change, Host, HostError, TaskContext};

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("{0}")]
    Failed(String),
}

pub(crate) fn fail(msg: impl Into<String>) -> ModuleError {
    ModuleError::Failed(msg.into())
}

/// The arguments of a module that takes none (`sshd: {}`): anything given is
/// an error. Each such module has its own type, so each has its own
/// [`Module`] impl.
macro_rules! no_args {
    ($name:ident) => {
        #[derive(Debug, Clone, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {}
    };
}
pub(crate) use no_args;

/// What a module is, implemented on its arguments in its own file. A new
/// module is that file plus one line in [`registry!`] below
/// (docs/deploy.md, "Writing a module").
pub trait Module {
    /// Whether its plan may run ahead of the run, against facts fetched in
    /// a batch (`engine::prefetch`): true only for a plan that reads the
    /// host through [`facts`] and nothing else, so that running it twice,
    /// or early, changes nothing anywhere. A module whose plan ever writes,
    /// sends input, or must see the host at the moment its task runs says
    /// `false` (the runner then plans it live, and treats anything it sent
    /// as a possible change). No default: each module decides.
    const PREFETCHABLE: bool;
    /// Whether it changes what every gateway runs (OpenClaw or Node), so
    /// both nodes restart: deploy then hands service to the standby first.
    const UPGRADE: bool = false;
    /// Whether it is a pure check, run even when it plans no change.
    const CHECK: bool = false;

    /// Reads the host and returns what must change (empty: nothing to do).
    fn plan<H: Host>(
        &self,
        host: &H,
        ctx: &TaskContext<'_>,
    ) -> impl std::future::Future<Output = Result<Vec<Change>, ModuleError>>;

    /// Checks made after its changes, and on every real run for a pure
    /// check; skipped under `--check`.
    fn verify<H: Host>(
        &self,
        _host: &H,
        _ctx: &TaskContext<'_>,
    ) -> impl std::future::Future<Output = Result<(), ModuleError>> {
        async { Ok(()) }
    }

    /// The read-only scripts a pure check starts with, fetched with the
    /// prefetched facts so that a check whose inputs did not change costs
    /// no round trip of its own.
    fn check_reads(&self, _ctx: &TaskContext<'_>) -> Vec<String> {
        Vec::new()
    }
}

/// Every module: `name: Variant(arguments type)`, `name` being the
/// module's name in playbooks (the variant's snake_case, which serde reads).
/// Generates [`NAMES`], [`ModuleCall`] and the dispatch the engine calls.
macro_rules! registry {
    ($($name:ident: $variant:ident($args:ty)),* $(,)?) => {
        /// Every module's name, as playbooks and the operator's tasks spell it.
        pub const NAMES: &[&str] = &[$(stringify!($name)),*];

        /// A task's module and its arguments, as written in a playbook.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(rename_all = "snake_case", deny_unknown_fields)]
        pub enum ModuleCall {
            $($variant($args)),*
        }

        /// Reads the host and returns what must change (empty: nothing to do).
        pub async fn plan<H: Host>(
            call: &ModuleCall,
            host: &H,
            ctx: &TaskContext<'_>,
        ) -> Result<Vec<Change>, ModuleError> {
            match call {
                $(ModuleCall::$variant(a) => Module::plan(a, host, ctx).await),*
            }
        }

        /// See [`Module::verify`].
        pub async fn verify<H: Host>(
            call: &ModuleCall,
            host: &H,
            ctx: &TaskContext<'_>,
        ) -> Result<(), ModuleError> {
            match call {
                $(ModuleCall::$variant(a) => Module::verify(a, host, ctx).await),*
            }
        }

        /// See [`Module::UPGRADE`].
        pub fn is_upgrade(call: &ModuleCall) -> bool {
            match call {
                $(ModuleCall::$variant(_) => <$args as Module>::UPGRADE),*
            }
        }

        /// See [`Module::CHECK`].
        pub fn is_check(call: &ModuleCall) -> bool {
            match call {
                $(ModuleCall::$variant(_) => <$args as Module>::CHECK),*
            }
        }

        /// See [`Module::PREFETCHABLE`].
        pub fn prefetchable(call: &ModuleCall) -> bool {
            match call {
                $(ModuleCall::$variant(_) => <$args as Module>::PREFETCHABLE),*
            }
        }

        /// See [`Module::check_reads`].
        pub fn check_reads(call: &ModuleCall, ctx: &TaskContext<'_>) -> Vec<String> {
            match call {
                $(ModuleCall::$variant(a) => Module::check_reads(a, ctx)),*
            }
        }
    };
}

registry! {
    apt: Apt(apt::Args),
    apt_security: AptSecurity(apt_security::Args),
    login_defs: LoginDefs(login_defs::Args),
    user: User(user::Args),
    directory: Directory(directory::Args),
    files: Files(files::Args),
    sshd: Sshd(sshd::Args),
    ufw: Ufw(ufw::Args),
    systemd: Systemd(systemd::Args),
    node: Node(node::Args),
    openclaw: Openclaw(openclaw::Args),
    openclaw_plugins: OpenclawPlugins(openclaw::PluginArgs),
    openclaw_validate: OpenclawValidate(openclaw::ValidateArgs),
    tailscale: Tailscale(tailscale::Args),
    workspace: Workspace(workspace::Args),
    conversation_replica: ConversationReplica(conversation_replica::Args),
    monitor_binary: MonitorBinary(monitor_binary::Args),
    switches: Switches(switches::Args),
}

/// Runs a facts script and returns its stdout; a facts script that fails is a
/// module bug or a broken host, never "no change".
pub(crate) async fn facts<H: Host>(host: &H, script: &Script) -> Result<String, ModuleError> {
    let out = host.run(&script.render(), None).await?;
    if !out.success() {
        return Err(HostError::command(host.name(), &script.describe(), &out).into());
    }
    Ok(out.stdout)
}

pub(crate) use crate::shell::Script;

#[cfg(test)]
mod tests {
    use super::ModuleCall;

    /// The registry's names are the ones serde reads in playbooks.
    #[test]
    fn the_registry_names_every_module_as_serde_reads_it() {
        // serde lists the variants when it meets an unknown one.
        let err = serde_json::from_str::<ModuleCall>(r#"{"no_such_module": {}}"#)
            .unwrap_err()
            .to_string();
        let names: Vec<&str> = err.split('`').skip(3).step_by(2).collect();
        assert_eq!(names, super::NAMES, "{err}");
    }
}
