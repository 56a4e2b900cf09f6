//! The synthetic population: who each arrival is, what it subscribes to, and
//! therefore which events it may read.
//!
//! Everything derives from the user number by arithmetic, so a worker needs no
//! per-connection copy of channels or teams: the receive path recomputes
//! membership to check each delivery (deliveries to a connection that should
//! not have received the event are counted and must stay zero).

use rtbench_protocol::jwt::{self, Claims, Team};

use rtbench_record::scenario::{Auth, Scenario, Session};

pub struct Population<'a> {
    session: &'a Session,
    project: &'a str,
    secret: &'a str,
}

impl<'a> Population<'a> {
    pub fn new(sc: &'a Scenario) -> Population<'a> {
        Population {
            session: &sc.session,
            project: &sc.target.project,
            secret: &sc.target.jwt_secret,
        }
    }

    /// The user an arrival plays (a reconnect plays the same user).
    pub fn user_of(&self, arrival: u64) -> u64 {
        match self.session.users {
            0 => arrival,
            n => arrival % n,
        }
    }

    fn pattern_indices(&self, user: u64) -> impl Iterator<Item = u64> + '_ {
        let s = self.session;
        let per = if s.channel_pattern.is_some() {
            s.channels_per_user
        } else {
            0
        };
        (0..per).map(move |j| (user * s.channels_per_user + j) % s.channel_count)
    }

    pub fn pattern_channel(&self, index: u64) -> Option<String> {
        self.session
            .channel_pattern
            .as_ref()
            .map(|p| p.replacen("{}", &index.to_string(), 1))
    }

    /// Every channel the scenario's users subscribe to (for publishers).
    pub fn all_channels(&self) -> Vec<String> {
        let s = self.session;
        let mut v = s.channels.clone();
        if s.channel_pattern.is_some() {
            v.extend((0..s.channel_count).filter_map(|i| self.pattern_channel(i)));
        }
        v
    }

    pub fn channels(&self, user: u64) -> Vec<String> {
        let mut v = self.session.channels.clone();
        v.extend(
            self.pattern_indices(user)
                .filter_map(|i| self.pattern_channel(i)),
        );
        v
    }

    pub fn teams(&self, user: u64) -> impl Iterator<Item = u64> + '_ {
        let s = self.session;
        (0..s.teams_per_user).map(move |j| (user * s.teams_per_user + j) % s.teams.max(1))
    }

    pub fn labels(&self, user: u64) -> Vec<String> {
        let s = self.session;
        let cut = (s.label_probability * 1_000_000.0) as u64;
        s.labels
            .iter()
            .enumerate()
            .filter(|(k, _)| mix(user * 31 + *k as u64) % 1_000_000 < cut)
            .map(|(_, l)| l.clone())
            .collect()
    }

    pub fn token(&self, user: u64) -> String {
        let s = self.session;
        let claims = Claims {
            sub: format!("u{user}"),
            exp: jwt::now_secs() + 86_400,
            teams: self
                .teams(user)
                .map(|t| Team {
                    id: format!("t{t}"),
                    roles: s.team_roles.clone(),
                })
                .collect(),
            labels: self.labels(user),
        };
        jwt::mint(&claims, self.secret.as_bytes())
    }

    /// The query string of an Appwrite connect URL for `user`.
    pub fn query(&self, user: u64) -> String {
        let mut q = format!("project={}", encode(self.project));
        for c in self.channels(user) {
            q.push_str("&channels%5B%5D=");
            q.push_str(&encode(&c));
        }
        if self.session.auth == Auth::Jwt {
            q.push_str("&jwt=");
            q.push_str(&self.token(user));
        }
        q
    }

    /// Whether `user` may receive an event on `channel` readable by `to`.
    pub fn may_read(&self, user: u64, channel: &str, to: &str) -> bool {
        let s = self.session;
        let subscribed = s.channels.iter().any(|c| c == channel)
            || s.channel_pattern.as_ref().is_some_and(|p| {
                let (pre, post) = p.split_once("{}").expect("checked: one {}");
                channel
                    .strip_prefix(pre)
                    .and_then(|r| r.strip_suffix(post))
                    .and_then(|n| n.parse::<u64>().ok())
                    .is_some_and(|i| self.pattern_indices(user).any(|j| j == i))
            });
        let signed_in = s.auth == Auth::Jwt;
        subscribed
            && match to {
                "any" => true,
                "guests" => !signed_in,
                "users" => signed_in,
                _ => {
                    if let Some(u) = to.strip_prefix("user:u") {
                        signed_in && u.parse() == Ok(user)
                    } else if let Some(t) = to.strip_prefix("team:t") {
                        signed_in
                            && t.parse::<u64>()
                                .is_ok_and(|t| self.teams(user).any(|x| x == t))
                    } else {
                        false
                    }
                }
            }
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A deterministic 64-bit mix (splitmix64's finalizer).
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(extra: &str) -> Scenario {
        let src = format!(
            "[target]\nurls=[\"ws://127.0.0.1:1\"]\n[[phases]]\nduration_s=1\nrate=1\n[session]\n{extra}"
        );
        Scenario::parse(&src, "t.toml").unwrap()
    }

    #[test]
    fn pattern_channels_spread_users_and_membership_agrees() {
        let sc = scenario(
            "channel_pattern=\"c.{}\"\nchannel_count=10\nchannels_per_user=2\nauth=\"jwt\"\nteams=4\nteams_per_user=1",
        );
        let p = Population::new(&sc);
        assert_eq!(p.channels(0), vec!["c.0", "c.1"]);
        assert_eq!(p.channels(6), vec!["c.2", "c.3"]);
        assert!(p.may_read(6, "c.3", "any"));
        assert!(!p.may_read(6, "c.4", "any"));
        assert!(p.may_read(6, "c.2", "user:u6") && !p.may_read(6, "c.2", "user:u7"));
        assert!(p.may_read(6, "c.2", "team:t2") && !p.may_read(6, "c.2", "team:t1"));
        assert!(!p.may_read(6, "c.2", "guests") && p.may_read(6, "c.2", "users"));
        let q = p.query(6);
        assert!(
            q.contains("channels%5B%5D=c.2&channels%5B%5D=c.3&jwt="),
            "{q}"
        );
    }

    #[test]
    fn tokens_carry_teams_and_verify() {
        let sc = scenario(
            "channels=[\"files\"]\nauth=\"jwt\"\nteams=3\nteams_per_user=2\nteam_roles=[\"owner\"]",
        );
        let p = Population::new(&sc);
        let c = jwt::verify(&p.token(1), b"rtbench-dev-secret", jwt::now_secs()).unwrap();
        assert_eq!(c.sub, "u1");
        let teams: Vec<&str> = c.teams.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(teams, vec!["t2", "t0"]);
        assert_eq!(c.teams[0].roles, vec!["owner"]);
    }
}
