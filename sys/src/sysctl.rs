//! Kernel settings under /proc/sys, by their `sysctl` names
//! (`net.ipv4.ip_local_port_range`), and the one the load generator plans
//! with: the local port range.

use std::path::PathBuf;

use crate::{Error, Result};

/// Where a setting lives: `net.core.somaxconn` is `/proc/sys/net/core/somaxconn`.
pub fn path(name: &str) -> PathBuf {
    PathBuf::from(format!("/proc/sys/{}", name.replace('.', "/")))
}

/// A setting's value with whitespace folded (`1024\t4096` reads as
/// `1024 4096`); `NotFound` where it does not exist (a module not loaded).
pub fn read(name: &str) -> Result<String> {
    let path = path(name);
    let text = std::fs::read_to_string(&path).map_err(|error| Error::Read { path, error })?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Sets a setting (root only, for most).
pub fn write(name: &str, value: &str) -> Result<()> {
    let path = path(name);
    std::fs::write(&path, value).map_err(|error| Error::Write { path, error })
}

/// Linux's default ephemeral port range: what a plan assumes where the
/// setting cannot be read.
pub const LINUX_DEFAULT_PORT_RANGE: (u16, u16) = (32768, 60999);

/// The ephemeral port range connect() picks source ports from
/// (`net.ipv4.ip_local_port_range`), first and last.
pub fn local_port_range() -> Result<(u16, u16)> {
    const NAME: &str = "net.ipv4.ip_local_port_range";
    let value = read(NAME)?;
    let mut ports = value.split(' ').map(|p| p.parse::<u16>().ok());
    match (ports.next().flatten(), ports.next().flatten()) {
        (Some(first), Some(last)) => Ok((first, last)),
        _ => Err(Error::format(
            path(NAME),
            format!("`{value}` is not two ports"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_by_name() {
        assert_eq!(
            path("net.ipv4.tcp_rmem"),
            PathBuf::from("/proc/sys/net/ipv4/tcp_rmem")
        );
        // Three numbers separated by tabs in the file, by spaces here.
        assert_eq!(read("net.ipv4.tcp_rmem").unwrap().split(' ').count(), 3);
        let (first, last) = local_port_range().unwrap();
        assert!(first <= last);
        let e = read("net.no.such.setting").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        assert!(
            e.to_string().starts_with("/proc/sys/net/no/such/setting: "),
            "{e}"
        );
    }
}
