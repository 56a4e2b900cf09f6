//! Whether an upgraded connection may stay, decided before it reaches a reactor.
//!
//! Runs in the handshake's task, right after the 101: connect rate, project,
//! token, channels and capacity. An admitted connection leaves with everything
//! its reactor needs (names to intern, its greeting framed); a refused one is
//! answered here with an `error` frame and a close carrying the same code, and
//! never costs a reactor anything.

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use serde_json::json;

use crate::messages::{URL_SUBSCRIPTION, effective_channels, error_frame, message, user_json};
use crate::metrics::{Limit, Rejected};
use crate::request::Request;
use crate::shared::Shared;
use crate::subs::Subscription;
use rtbench_protocol::frame::{self, close};
use rtbench_protocol::jwt::{self, Claims};

/// An admitted connection: what its reactor files it under and greets it
/// with. The claims last until the reactor has filed the session.
pub(crate) struct Admit {
    pub(crate) project: String,
    pub(crate) user: Option<Box<Claims>>,
    pub(crate) channels: Vec<String>,
    /// The URL named `account` (rebuilt from `channels` with it).
    pub(crate) account: bool,
    /// The URL's subscription, when it cannot be rebuilt so.
    pub(crate) subs: Option<Vec<Subscription>>,
    pub(crate) greeting: Vec<Bytes>,
}

/// A refused connection: the frames to send (an `error`, then the close).
pub(crate) struct Refuse {
    pub(crate) frames: Vec<Bytes>,
}

/// Decides; an admitted connection holds a place in the server's capacity
/// (`Shared::open`) from here on.
pub(crate) fn decide(shared: &Shared, peer: IpAddr, req: &Request) -> Result<Admit, Refuse> {
    let cfg = &shared.config;
    let mut greeting = Vec::new();
    let refuse = |greeting: Vec<Bytes>, why: Rejected, code: u16, message: &str| {
        shared.metrics.reject(why);
        let mut frames = greeting;
        frames.push(error_frame(code, message));
        frames.push(frame::close_frame(code, message));
        Err(Refuse { frames })
    };
    if let Some(l) = &shared.connect_limiter
        && !l.allow(peer, jwt::now_secs())
    {
        return refuse(
            greeting,
            Rejected::ConnectRate,
            close::TRY_AGAIN_LATER,
            "Too many requests",
        );
    }
    let project = req
        .query_values("project")
        .next()
        .or_else(|| req.header("x-appwrite-project").map(str::to_owned));
    let Some(project) = project.filter(|p| cfg.project_allowed(p)) else {
        return refuse(
            greeting,
            Rejected::Project,
            close::POLICY_VIOLATION,
            "Missing or unknown project ID",
        );
    };
    let mut user = None;
    let token = req
        .header("x-appwrite-jwt")
        .map(str::to_owned)
        .or_else(|| req.query_values("jwt").next());
    if let Some(token) = token {
        match jwt::verify(&token, shared.jwt_secret(), jwt::now_secs()) {
            Ok(c) => user = Some(Box::new(c)),
            // A bad token on connect leaves a guest, as in Appwrite.
            Err(e) => greeting.push(error_frame(close::POLICY_VIOLATION, &e.to_string())),
        }
    }
    let raw = req.channels();
    if raw.is_empty() && cfg.require_channels {
        return refuse(
            greeting,
            Rejected::Channels,
            close::POLICY_VIOLATION,
            "Missing channels",
        );
    }
    let limits = cfg.subscription_limits();
    let over = if raw.len() > limits.channels {
        Some(crate::subs::Over::Channels)
    } else if raw.iter().any(|c| c.len() > limits.channel_bytes) {
        Some(crate::subs::Over::ChannelBytes)
    } else {
        None
    };
    if let Some(over) = over {
        shared.metrics.hit(Limit::from(over));
        return refuse(
            greeting,
            Rejected::Channels,
            close::POLICY_VIOLATION,
            &over.message(&limits),
        );
    }
    let user_id = user.as_deref().map(|c| c.sub.as_str());
    let channels = effective_channels(raw.iter().map(String::as_str), user_id);
    let account = raw.iter().any(|c| c == "account");
    // The URL's subscription is rebuilt from the filed channels when it is
    // needed; kept only when that would not give back what was named
    // (`account` beside this user's `account.<id>`).
    let mut named: Vec<&str> = raw.iter().map(String::as_str).collect();
    let mut rebuilt =
        crate::subs::url_channels(channels.iter().map(String::as_str), account, user_id);
    named.sort_unstable();
    named.dedup();
    rebuilt.sort_unstable();
    let subs = (named.iter().copied().ne(rebuilt.iter().map(|c| &**c))).then(|| {
        vec![Subscription {
            id: URL_SUBSCRIPTION.into(),
            channels: raw.iter().map(|c| c.as_str().into()).collect(),
        }]
    });
    greeting.push(message(
        "connected",
        json!({"channels": channels, "user": user_json(user.as_deref())}),
    ));
    if !shared.reserve() {
        greeting.pop(); // not connected after all
        return refuse(
            greeting,
            Rejected::Full,
            close::TRY_AGAIN_LATER,
            "Server is full",
        );
    }
    shared.metrics.connections_total.fetch_add(1, Relaxed);
    Ok(Admit {
        project,
        user,
        channels,
        account,
        subs,
        greeting,
    })
}
