//! A connection's subscriptions, for connections that change them.
//!
//! Most connections name their channels in the connect URL and never change
//! them; they keep only the interned ids they are filed under (`conn.rs`).
//! A connection that sends `subscribe` or `unsubscribe` gets a `Subs`: its
//! subscriptions as the client gave them, and how many of them hold each
//! channel. A change then touches only the channels it changes: a channel
//! is filed when its first holder arrives and unfiled when its last leaves,
//! so a client with a thousand channels pays for the one it adds, not for
//! the thousand it has. Every client-chosen quantity has a limit (`Limits`),
//! checked before anything changes.

use std::collections::HashMap;

use crate::fasthash::Build;

/// A named set of channels, as the client gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Box<str>,
    pub channels: Vec<Box<str>>,
}

impl Subscription {
    fn bytes(&self) -> usize {
        self.id.len() + self.channels.iter().map(|c| c.len()).sum::<usize>()
    }
}

/// What one connection may hold (server flags, `config.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub subscriptions: usize,
    pub channels: usize,
    pub channel_bytes: usize,
    pub id_bytes: usize,
    pub bytes: usize,
}

/// The limit a change would break; the change is refused whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Subscriptions,
    Channels,
    ChannelBytes,
    IdBytes,
    Bytes,
}

impl Over {
    pub(crate) fn message(self, l: &Limits) -> String {
        match self {
            Over::Subscriptions => format!("Too many subscriptions (at most {})", l.subscriptions),
            Over::Channels => format!("Too many channels (at most {})", l.channels),
            Over::ChannelBytes => {
                format!("Channel name too long (at most {} bytes)", l.channel_bytes)
            }
            Over::IdBytes => format!("Subscription id too long (at most {} bytes)", l.id_bytes),
            Over::Bytes => format!("Subscriptions too large (at most {} bytes)", l.bytes),
        }
    }
}

/// The channel a connection is filed under for `raw`: `account` is
/// `account.<userId>` for a signed-in user (`user` is its id) and nothing
/// for a guest.
pub fn effective(raw: &str, user: Option<&str>) -> Option<String> {
    match (raw, user) {
        ("account", Some(u)) => Some(format!("account.{u}")),
        ("account", None) => None,
        _ => Some(raw.to_string()),
    }
}

/// The connect URL's channels as the client named them, rebuilt from the
/// channels filed for them (`effective`) and whether it named `account`:
/// a connection that never changes its subscriptions keeps no `Subs`,
/// only its filed ids and that one bit. Channels named twice come back
/// once (a subscription holds a channel once).
pub(crate) fn url_channels<'a>(
    filed: impl IntoIterator<Item = &'a str>,
    account: bool,
    user: Option<&str>,
) -> Vec<Box<str>> {
    let own = user.map(|u| format!("account.{u}"));
    let mut out: Vec<Box<str>> = Vec::new();
    for ch in filed {
        if account && own.as_deref() == Some(ch) {
            continue; // `account`, added below
        }
        out.push(ch.into());
    }
    if account {
        out.push("account".into());
    }
    out
}

/// Channels to file and to unfile after a change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub(crate) added: Vec<String>,
    pub(crate) removed: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Subs {
    list: Vec<Subscription>,
    /// Filed channel → how many subscriptions hold it.
    holders: HashMap<String, u32, Build>,
    bytes: usize,
    /// Subscriptions naming `account`: filed for a signed-in user only, so
    /// a guest's limit counts it too (signing in must not pass the limit).
    account: u32,
}

impl Subs {
    /// The subscriptions as they stand (a connect URL's channels: the one
    /// `default` subscription, already checked at admission).
    pub fn new(list: Vec<Subscription>, user: Option<&str>) -> Subs {
        let mut s = Subs::default();
        for sub in list {
            s.add(sub, user, &mut Change::default());
        }
        s
    }

    pub fn list(&self) -> &[Subscription] {
        &self.list
    }

    /// The channels filed, each once.
    pub fn filed(&self) -> impl Iterator<Item = &str> {
        self.holders.keys().map(String::as_str)
    }

    fn add(&mut self, sub: Subscription, user: Option<&str>, change: &mut Change) {
        let mut seen: Vec<String> = Vec::new();
        for raw in &sub.channels {
            let Some(ch) = effective(raw, user) else {
                continue;
            };
            if seen.contains(&ch) {
                continue; // one subscription holds a channel once
            }
            let n = self.holders.entry(ch.clone()).or_default();
            *n += 1;
            if *n == 1 {
                note(change, ch.clone(), true);
            }
            seen.push(ch);
        }
        self.bytes += sub.bytes();
        self.account += u32::from(sub.channels.iter().any(|c| &**c == "account"));
        self.list.push(sub);
    }

    fn take(&mut self, id: &str, user: Option<&str>, change: &mut Change) -> Option<Subscription> {
        let at = self.list.iter().position(|s| *s.id == *id)?;
        let sub = self.list.remove(at);
        let mut seen: Vec<String> = Vec::new();
        for raw in &sub.channels {
            let Some(ch) = effective(raw, user) else {
                continue;
            };
            if seen.contains(&ch) {
                continue;
            }
            if let Some(n) = self.holders.get_mut(&ch) {
                *n -= 1;
                if *n == 0 {
                    self.holders.remove(&ch);
                    note(change, ch.clone(), false);
                }
            }
            seen.push(ch);
        }
        self.bytes -= sub.bytes();
        self.account -= u32::from(sub.channels.iter().any(|c| &**c == "account"));
        Some(sub)
    }

    /// Adds or replaces (by id) `new` subscriptions, unless the result
    /// would break a limit; returns the channels to file and unfile.
    pub fn upsert(
        &mut self,
        new: Vec<Subscription>,
        user: Option<&str>,
        limits: &Limits,
    ) -> Result<Change, Over> {
        for sub in &new {
            if sub.id.len() > limits.id_bytes {
                return Err(Over::IdBytes);
            }
            if sub.channels.iter().any(|c| c.len() > limits.channel_bytes) {
                return Err(Over::ChannelBytes);
            }
        }
        let mut change = Change::default();
        let mut replaced = Vec::new();
        for sub in new.iter().cloned() {
            if let Some(old) = self.take(&sub.id, user, &mut change) {
                replaced.push(old);
            }
            self.add(sub, user, &mut change);
        }
        let over = if self.list.len() > limits.subscriptions {
            Some(Over::Subscriptions)
        } else if self.holders.len() + usize::from(user.is_none() && self.account > 0)
            > limits.channels
        {
            Some(Over::Channels)
        } else if self.bytes > limits.bytes {
            Some(Over::Bytes)
        } else {
            None
        };
        if let Some(over) = over {
            // Undo: the refused change leaves nothing behind.
            let mut ignored = Change::default();
            for sub in &new {
                self.take(&sub.id, user, &mut ignored);
            }
            for old in replaced {
                self.add(old, user, &mut ignored);
            }
            return Err(over);
        }
        Ok(change)
    }

    /// Drops the subscriptions named in `ids`.
    pub fn remove(&mut self, ids: &[&str], user: Option<&str>) -> Change {
        let mut change = Change::default();
        for id in ids {
            self.take(id, user, &mut change);
        }
        change
    }
}

/// Records that `ch` was filed (`added`) or unfiled; a channel removed and
/// added back in one change is neither.
fn note(change: &mut Change, ch: String, added: bool) {
    let (this, other) = if added {
        (&mut change.added, &mut change.removed)
    } else {
        (&mut change.removed, &mut change.added)
    };
    match other.iter().position(|c| *c == ch) {
        Some(i) => {
            other.swap_remove(i);
        }
        None => this.push(ch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        subscriptions: 3,
        channels: 4,
        channel_bytes: 10,
        id_bytes: 5,
        bytes: 25,
    };

    fn sub(id: &str, channels: &[&str]) -> Subscription {
        Subscription {
            id: id.into(),
            channels: channels.iter().map(|&c| c.into()).collect(),
        }
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn a_change_files_only_the_channels_it_changes() {
        let mut s = Subs::new(vec![sub("default", &["a", "b"])], None);
        let c = s
            .upsert(vec![sub("x", &["b", "c"])], None, &LIMITS)
            .unwrap();
        assert_eq!((c.added, c.removed), (vec!["c".to_string()], vec![]));
        // Replacing x: `b` is still held by default, `c` goes, `d` comes.
        let c = s
            .upsert(vec![sub("x", &["b", "d"])], None, &LIMITS)
            .unwrap();
        assert_eq!(
            (c.added, c.removed),
            (vec!["d".to_string()], vec!["c".to_string()])
        );
        let c = s.remove(&["default", "nope"], None);
        assert_eq!((c.added, c.removed), (vec![], vec!["a".to_string()]));
        assert_eq!(
            sorted(s.filed().map(String::from).collect()),
            vec!["b", "d"]
        );
    }

    #[test]
    fn a_change_over_a_limit_is_refused_and_changes_nothing() {
        let mut s = Subs::new(vec![sub("default", &["a", "b"])], None);
        assert_eq!(
            s.upsert(vec![sub("x", &["c", "d", "e"])], None, &LIMITS),
            Err(Over::Channels)
        );
        assert_eq!(
            s.upsert(
                vec![sub("y", &["c"]), sub("z", &["d"]), sub("w", &["e"])],
                None,
                &LIMITS
            ),
            Err(Over::Subscriptions)
        );
        assert_eq!(
            s.upsert(vec![sub("toolongid", &["c"])], None, &LIMITS),
            Err(Over::IdBytes)
        );
        assert_eq!(
            s.upsert(vec![sub("x", &["channel-too-long"])], None, &LIMITS),
            Err(Over::ChannelBytes)
        );
        assert_eq!(
            s.upsert(vec![sub("x", &["cccccccccc", "dddddddddd"])], None, &LIMITS),
            Err(Over::Bytes)
        );
        assert_eq!(s.list(), &[sub("default", &["a", "b"])]);
        assert_eq!(
            sorted(s.filed().map(String::from).collect()),
            vec!["a", "b"]
        );
    }

    #[test]
    fn signing_in_never_takes_a_connection_past_the_channel_limit() {
        let u = "u1";
        let mut s = Subs::new(Vec::new(), None);
        // A guest's `account` is not filed, but counts: 3 + account = 4.
        s.upsert(vec![sub("x", &["a", "b", "c", "account"])], None, &LIMITS)
            .unwrap();
        assert_eq!(
            s.upsert(vec![sub("y", &["d"])], None, &LIMITS),
            Err(Over::Channels)
        );
        let signed_in = Subs::new(s.list().to_vec(), Some(u));
        assert_eq!(signed_in.filed().count(), 4);
    }

    #[test]
    fn a_url_subscription_is_rebuilt_from_what_is_filed() {
        let sorted = |v: Vec<Box<str>>| {
            let mut v: Vec<String> = v.into_iter().map(String::from).collect();
            v.sort();
            v
        };
        assert_eq!(
            sorted(url_channels(["files", "account.u1"], true, Some("u1"))),
            ["account", "files"]
        );
        assert_eq!(
            sorted(url_channels(["files"], true, None)),
            ["account", "files"]
        );
        assert_eq!(
            sorted(url_channels(["files", "account.u2"], false, Some("u1"))),
            ["account.u2", "files"]
        );
        assert_eq!(sorted(url_channels(["files"], false, None)), ["files"]);
    }

    #[test]
    fn account_is_the_users_channel_or_none() {
        let u = "u1";
        let s = Subs::new(
            vec![sub("default", &["files", "account", "account.u1"])],
            Some(u),
        );
        assert_eq!(
            sorted(s.filed().map(String::from).collect()),
            vec!["account.u1", "files"]
        );
        let s = Subs::new(vec![sub("default", &["files", "account"])], None);
        assert_eq!(s.filed().collect::<Vec<_>>(), vec!["files"]);
    }
}
