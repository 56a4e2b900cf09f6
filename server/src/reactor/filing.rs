//! Filing a connection in the reactor's subscription index (`index.rs`)
//! under its project, channels and roles, with the interned names it
//! holds for as long: re-filed when a message changes its subscriptions
//! or signs it in, unfiled when its close begins.

use std::sync::atomic::Ordering::Relaxed;

use super::Reactor;
use crate::conn::{Flag, Ids};
use crate::index::ConnId;
use crate::intern::Id;
use crate::sessions::Session;

impl Reactor {
    /// Takes the connection out of the index and gives back its names.
    pub(super) fn unfile(&mut self, id: ConnId) {
        let c = &mut self.conns[id as usize];
        if !c.flags.take(Flag::Filed) {
            return;
        }
        // Counted at once: a panic below leaves no open connection behind.
        self.shared.open.fetch_sub(1, Relaxed);
        let channels = std::mem::take(&mut c.channels);
        let session = std::mem::replace(&mut c.session, crate::sessions::GUEST);
        let project = c.project;
        let roles = self.sessions.roles_of(session);
        self.index.remove(id, project, channels.as_slice(), &roles);
        for &ch in channels.as_slice() {
            self.names.release(ch);
        }
        self.sessions.release(&mut self.names, session);
        self.names.release(project);
    }

    /// Re-files a connection under new channels and, after authentication,
    /// a new session: the new names are taken before the old are given
    /// back, so nothing shared is forgotten between.
    pub(crate) fn refile(&mut self, id: ConnId, channels: &[String], session: Option<Session>) {
        let new_channels: Vec<Id> = channels.iter().map(|c| self.names.acquire(c)).collect();
        let c = &mut self.conns[id as usize];
        let old_channels = std::mem::replace(&mut c.channels, Ids::from_slice(&new_channels));
        let old_session = c.session;
        if let Some(s) = session {
            c.session = s;
        }
        let new_session = c.session;
        let project = c.project;
        let old_roles = self.sessions.roles_of(old_session);
        let new_roles = self.sessions.roles_of(new_session);
        #[cfg(test)]
        super::panics::planted("refile");
        self.index
            .remove(id, project, old_channels.as_slice(), &old_roles);
        self.index.insert(id, project, &new_channels, &new_roles);
        for &ch in old_channels.as_slice() {
            self.names.release(ch);
        }
        if session.is_some() {
            self.sessions.release(&mut self.names, old_session);
        }
    }

    /// Files and unfiles the channels a subscription change changed: the
    /// cost follows the change, not the channels the connection holds.
    pub(crate) fn refile_change(&mut self, id: ConnId, change: &crate::subs::Change) {
        if change.added.is_empty() && change.removed.is_empty() {
            return;
        }
        let added: Vec<Id> = change.added.iter().map(|c| self.names.acquire(c)).collect();
        let removed: Vec<Id> = change
            .removed
            .iter()
            .filter_map(|c| self.names.get(c))
            .collect();
        let roles = self.sessions.roles_of(self.conns[id as usize].session);
        let c = &mut self.conns[id as usize];
        let project = c.project;
        let mut channels: Vec<Id> = c
            .channels
            .as_slice()
            .iter()
            .copied()
            .filter(|ch| !removed.contains(ch))
            .collect();
        channels.extend_from_slice(&added);
        c.channels = Ids::from_slice(&channels);
        self.index.remove(id, project, &removed, &roles);
        self.index.insert(id, project, &added, &roles);
        for ch in removed {
            self.names.release(ch);
        }
    }
}
