//! The roles a session grants, as Appwrite names them.
//!
//! Roles are all the fan-out index needs to decide who may read an event; the
//! session itself is a token (`rtbench_protocol::jwt`). A session is filed
//! under its user's own role and the roles it shares with others
//! (`sessions.rs`); `verified` variants are not filed, as every session
//! here is verified: `filed_as` maps an event's role to what grants it.

use rtbench_protocol::jwt::Claims;

/// The role only this user holds.
pub(crate) fn user_role(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// The user id in a role `user_role` made.
pub(crate) fn user_of_role(role: &str) -> &str {
    role.strip_prefix("user:").unwrap_or(role)
}

/// Appwrite's roles for a signed-in user besides its own (`user_role`),
/// sorted, each once: `any` (every connection holds it, so an event readable
/// by `any` is one index lookup), `users`, teams and team roles, labels.
pub(crate) fn shared_roles(u: &Claims) -> Vec<String> {
    let mut roles: Vec<String> = vec!["any".into(), "users".into()];
    for t in &u.teams {
        roles.push(format!("team:{}", t.id));
        for r in &t.roles {
            roles.push(format!("team:{}/{}", t.id, r));
        }
    }
    for l in &u.labels {
        roles.push(format!("label:{l}"));
    }
    roles.sort_unstable();
    roles.dedup();
    roles
}

/// The role a session is filed under that grants `role` besides `role`
/// itself: `users` for `users/verified`, `user:<id>` for
/// `user:<id>/verified` (a session is verified whenever it exists).
pub(crate) fn filed_as(role: &str) -> Option<&str> {
    let base = role.strip_suffix("/verified")?;
    (base == "users" || base.starts_with("user:")).then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtbench_protocol::jwt::Team;

    fn claims() -> Claims {
        Claims {
            sub: "u1".into(),
            exp: 1,
            teams: vec![Team {
                id: "t1".into(),
                roles: vec!["owner".into(), "owner".into()],
            }],
            labels: vec!["vip".into()],
        }
    }

    #[test]
    fn roles_follow_appwrite() {
        assert_eq!(
            shared_roles(&claims()),
            ["any", "label:vip", "team:t1", "team:t1/owner", "users"]
        );
        assert_eq!(user_role("u1"), "user:u1");
        assert_eq!(user_of_role("user:u1"), "u1");
    }

    #[test]
    fn verified_roles_are_granted_by_the_filed_ones() {
        assert_eq!(filed_as("users/verified"), Some("users"));
        assert_eq!(filed_as("user:u1/verified"), Some("user:u1"));
        assert_eq!(
            filed_as("user:a/verified/verified"),
            Some("user:a/verified")
        );
        for not in [
            "users",
            "user:u1",
            "team:t1/verified",
            "label:verified",
            "guests/verified",
            "any",
        ] {
            assert_eq!(filed_as(not), None, "{not}");
        }
    }
}
