//! systemd's notify protocol: a datagram to `$NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let result = match path.strip_prefix('@') {
        // Abstract socket names exist on Linux only, where the monitor runs;
        // the laptop's build (macOS too) compiles without them.
        #[cfg(target_os = "linux")]
        Some(abstract_name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        }
        _ => sock.send_to(state.as_bytes(), &path),
    };
    if let Err(e) = result {
        tracing::debug!("sd_notify: {e}");
    }
}

/// Half of `WatchdogSec`, as systemd recommends, when the watchdog is on.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    Some(Duration::from_micros(usec / 2))
}
