//! `ocfo monitor`: the standby's failover daemon.
//!
//! `machine` is the pure state machine, `probe` the HTTP health check,
//! `sentinel` a kept-open connection that says when to probe at once,
//! `actions` what is done to the standby (systemctl, git), `requests` the
//! hold, drill and switchover files the laptop writes, `notify` the
//! webhook, `state_file` what `ocfo monitor status` reads, `daemon` the
//! loop that ties them together. See docs/monitor.md.

pub mod actions;
pub mod arming;
pub mod chain;
pub mod config;
pub mod conversation;
pub mod daemon;
pub mod machine;
pub mod notify;
pub mod probe;
pub mod replica;
pub mod requests;
pub mod sd_notify;
pub mod sentinel;
pub mod state_file;
pub mod take_back;

#[cfg(test)]
mod tests;

pub use config::MonitorConfig;
pub use state_file::MonitorState;

/// Runs the daemon with the real probe and actions until SIGTERM or SIGINT.
pub async fn run(config: MonitorConfig) {
    let token = config
        .probe
        .token_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok())
        .filter(|t| !t.is_empty());
    if config.probe.token_env.is_some() && token.is_none() {
        tracing::warn!(
            "the gateway token is not in the environment: /readyz answers without reasons"
        );
    }
    let actions = actions::SystemActions::new(config.clone(), token.clone());
    let prober = daemon::HttpProber {
        urls: config.probe.urls.clone(),
        mode: config.probe.mode,
        timeout: config.probe.timeout,
        token,
        channels: config.probe.primary_channels.clone(),
        standbys_before: config.probe.standbys_before.clone(),
        chain: std::sync::Mutex::new(chain::ChainView::new(
            config
                .probe
                .standby_grace
                .unwrap_or(chain::DEFAULT_STANDBY_GRACE),
        )),
    };
    let notifier = notify::Notifier::new(config.notify.as_ref(), &config.name);
    let urls = config.probe.urls.clone();
    let d = daemon::Daemon::start(config, prober, actions, notifier).await;
    // Dropped with the runtime when the daemon returns.
    tokio::spawn(sentinel::watch(urls, d.waker()));
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    d.run(shutdown).await;
}
