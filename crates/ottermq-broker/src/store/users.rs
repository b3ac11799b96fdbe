//! Users and permissions as an append-only log (`users.log` in the data directory), framed
//! and checksummed like the definitions log: one record per change, synced before the change
//! is answered; replayed and rewritten compacted at start. Passwords are stored only as their
//! salted hashes.

use super::record::{self, put_long, put_short, Fields, Item, Malformed};
use super::recovery::{Issue, IssueKind};
use crate::permissions::{HashAlgorithm, PasswordHash, Permission, User};
use crate::topic_permissions::TopicPermission;
use bytes::Bytes;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const REC_USER: u8 = 1;
const REC_DEL_USER: u8 = 2;
const REC_PERM: u8 = 3;
const REC_DEL_PERM: u8 = 4;
const REC_DEL_VHOST: u8 = 5;
const REC_TOPIC_PERM: u8 = 6;
const REC_DEL_TOPIC_PERM: u8 = 7;

/// One change to users or permissions.
#[derive(Debug, Clone)]
pub enum UserChange {
    /// Adds or replaces a user.
    PutUser(User),
    /// Removes a user and its permissions.
    DeleteUser(String),
    SetPermission {
        vhost: String,
        user: String,
        perm: Permission,
    },
    ClearPermission {
        vhost: String,
        user: String,
    },
    /// Drops every permission in a deleted vhost.
    DeleteVhost(String),
    /// Adds or replaces the topic permission of (vhost, user, `perm.exchange`).
    SetTopicPermission {
        vhost: String,
        user: String,
        perm: TopicPermission,
    },
    /// Removes the user's topic permissions in the vhost: for one exchange, or all of them.
    ClearTopicPermission {
        vhost: String,
        user: String,
        exchange: Option<String>,
    },
}

/// The open users log.
#[derive(Debug)]
pub struct UsersLog {
    path: PathBuf,
    file: Mutex<File>,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("users.log")
}

impl UsersLog {
    /// Reads the log's changes (damage into `issues`); the flag is true when there was no log.
    pub fn replay(
        data_dir: &Path,
        issues: &mut Vec<Issue>,
    ) -> std::io::Result<(Vec<UserChange>, bool)> {
        let path = path(data_dir);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), true)),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for item in record::Reader::new(Bytes::from(data)) {
            let (offset, kind) = match item {
                Item::Record { offset, payload } => match decode(payload) {
                    Ok(c) => {
                        out.push(c);
                        continue;
                    }
                    Err(Malformed) => (offset, IssueKind::Malformed),
                },
                Item::Corrupt { offset, .. } => (offset, IssueKind::Corrupt),
                Item::Torn { offset } => (offset, IssueKind::TornTail),
            };
            issues.push(Issue {
                file: path.clone(),
                offset,
                kind,
            });
        }
        Ok((out, false))
    }

    /// Writes `state` as the whole log (temporary file, synced, renamed) and opens it for
    /// appending.
    pub fn rewrite(data_dir: &Path, state: &[UserChange]) -> std::io::Result<UsersLog> {
        let path = path(data_dir);
        let mut out = Vec::new();
        for c in state {
            record::append(&mut out, |o| encode(o, c));
        }
        let tmp = data_dir.join("users.log.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(data_dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(UsersLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// Appends one change and syncs it; a failure is logged (the change holds in memory).
    pub fn record(&self, c: &UserChange) {
        let mut buf = Vec::with_capacity(128);
        record::append(&mut buf, |o| encode(o, c));
        let mut f = self.file.lock();
        if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
            tracing::error!(path = %self.path.display(), error = %e, "could not record a user change");
        }
    }
}

fn algo_code(a: HashAlgorithm) -> u8 {
    match a {
        HashAlgorithm::Sha256 => 0,
        HashAlgorithm::Sha512 => 1,
    }
}

fn encode(o: &mut Vec<u8>, c: &UserChange) {
    match c {
        UserChange::PutUser(u) => {
            o.push(REC_USER);
            put_long(o, u.name.as_bytes());
            o.push(algo_code(u.hash.algorithm));
            put_short(o, &u.hash.bytes);
            put_long(o, u.tags.join(",").as_bytes());
        }
        UserChange::DeleteUser(n) => {
            o.push(REC_DEL_USER);
            put_long(o, n.as_bytes());
        }
        UserChange::SetPermission { vhost, user, perm } => {
            o.push(REC_PERM);
            put_long(o, vhost.as_bytes());
            put_long(o, user.as_bytes());
            put_long(o, perm.configure.as_bytes());
            put_long(o, perm.write.as_bytes());
            put_long(o, perm.read.as_bytes());
        }
        UserChange::ClearPermission { vhost, user } => {
            o.push(REC_DEL_PERM);
            put_long(o, vhost.as_bytes());
            put_long(o, user.as_bytes());
        }
        UserChange::DeleteVhost(v) => {
            o.push(REC_DEL_VHOST);
            put_long(o, v.as_bytes());
        }
        UserChange::SetTopicPermission { vhost, user, perm } => {
            o.push(REC_TOPIC_PERM);
            put_long(o, vhost.as_bytes());
            put_long(o, user.as_bytes());
            put_long(o, perm.exchange.as_bytes());
            put_long(o, perm.write.as_bytes());
            put_long(o, perm.read.as_bytes());
        }
        UserChange::ClearTopicPermission {
            vhost,
            user,
            exchange,
        } => {
            o.push(REC_DEL_TOPIC_PERM);
            put_long(o, vhost.as_bytes());
            put_long(o, user.as_bytes());
            // 0: every exchange; 1 then the name: that one.
            match exchange {
                None => o.push(0),
                Some(x) => {
                    o.push(1);
                    put_long(o, x.as_bytes());
                }
            }
        }
    }
}

fn text(f: &mut Fields) -> Result<String, Malformed> {
    String::from_utf8(f.long()?.to_vec()).map_err(|_| Malformed)
}

fn decode(payload: Bytes) -> Result<UserChange, Malformed> {
    let mut f = Fields::new(payload);
    let c = match f.u8()? {
        REC_USER => {
            let name = text(&mut f)?;
            let algorithm = match f.u8()? {
                0 => HashAlgorithm::Sha256,
                1 => HashAlgorithm::Sha512,
                _ => return Err(Malformed),
            };
            let bytes = f.short()?.to_vec();
            let tags = text(&mut f)?;
            UserChange::PutUser(User {
                name,
                hash: PasswordHash { algorithm, bytes },
                tags: tags
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
            })
        }
        REC_DEL_USER => UserChange::DeleteUser(text(&mut f)?),
        REC_PERM => {
            let vhost = text(&mut f)?;
            let user = text(&mut f)?;
            let (c, w, r) = (text(&mut f)?, text(&mut f)?, text(&mut f)?);
            let perm = Permission::new(&c, &w, &r).map_err(|_| Malformed)?;
            UserChange::SetPermission { vhost, user, perm }
        }
        REC_DEL_PERM => UserChange::ClearPermission {
            vhost: text(&mut f)?,
            user: text(&mut f)?,
        },
        REC_DEL_VHOST => UserChange::DeleteVhost(text(&mut f)?),
        REC_TOPIC_PERM => {
            let vhost = text(&mut f)?;
            let user = text(&mut f)?;
            let (x, w, r) = (text(&mut f)?, text(&mut f)?, text(&mut f)?);
            let perm = TopicPermission::new(&x, &w, &r, &user, &vhost).map_err(|_| Malformed)?;
            UserChange::SetTopicPermission { vhost, user, perm }
        }
        REC_DEL_TOPIC_PERM => {
            let vhost = text(&mut f)?;
            let user = text(&mut f)?;
            let exchange = match f.u8()? {
                0 => None,
                1 => Some(text(&mut f)?),
                _ => return Err(Malformed),
            };
            UserChange::ClearTopicPermission {
                vhost,
                user,
                exchange,
            }
        }
        _ => return Err(Malformed),
    };
    if !f.is_empty() {
        return Err(Malformed);
    }
    Ok(c)
}
