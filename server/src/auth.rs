//! The roles a session grants, as Appwrite names them.
//!
//! Roles are all the fan-out index needs to decide who may read an event; the
//! session itself is a token (`rtbench_protocol::jwt`).

use rtbench_protocol::jwt::Claims;

/// Appwrite's roles for a guest (`None`) or a signed-in user. Every connection
/// also holds `any`, so an event readable by `any` is one index lookup.
pub fn roles_for(user: Option<&Claims>) -> Vec<Box<str>> {
    let mut roles: Vec<Box<str>> = vec!["any".into()];
    let Some(u) = user else {
        roles.push("guests".into());
        return roles;
    };
    roles.push(format!("user:{}", u.sub).into());
    roles.push("users".into());
    roles.push(format!("user:{}/verified", u.sub).into());
    roles.push("users/verified".into());
    for t in &u.teams {
        roles.push(format!("team:{}", t.id).into());
        for r in &t.roles {
            roles.push(format!("team:{}/{}", t.id, r).into());
        }
    }
    for l in &u.labels {
        roles.push(format!("label:{l}").into());
    }
    roles.sort_unstable();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtbench_protocol::jwt::Team;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            exp,
            teams: vec![Team { id: "t1".into(), roles: vec!["owner".into()] }],
            labels: vec!["vip".into()],
        }
    }

    #[test]
    fn roles_follow_appwrite() {
        assert_eq!(roles_for(None), vec!["any".into(), "guests".into()] as Vec<Box<str>>);
        let r = roles_for(Some(&claims(1)));
        for want in
            ["any", "user:u1", "users", "user:u1/verified", "users/verified", "team:t1", "team:t1/owner", "label:vip"]
        {
            assert!(r.iter().any(|x| &**x == want), "missing {want} in {r:?}");
        }
        assert!(!r.iter().any(|x| &**x == "guests"));
    }
}
