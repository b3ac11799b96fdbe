//! Durable definitions of one vhost (exchanges, queues, bindings) as an append-only log.
//!
//! Each declare or delete of a durable object appends one record and `fdatasync`s before the
//! declare-ok goes out, so a definition the client saw confirmed survives a crash; the cost is
//! one record, not a rewrite of every definition. At start the log is replayed into a model and
//! rewritten compacted (to a temporary file, synced, renamed over the old one).

use super::record::{self, put_short, put_table, Fields, Item, Malformed};
use super::recovery::{Issue, IssueKind};
use crate::exchange::ExchangeKind;
use bytes::Bytes;
use ottermq_protocol::{FieldTable, ShortStr};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const REC_EXCHANGE: u8 = 1;
const REC_DEL_EXCHANGE: u8 = 2;
const REC_QUEUE: u8 = 3;
const REC_DEL_QUEUE: u8 = 4;
const REC_BIND: u8 = 5;
const REC_UNBIND: u8 = 6;

#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDef {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDef {
    pub name: ShortStr,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BindingDef {
    pub source: ShortStr,
    pub to_queue: bool,
    pub destination: ShortStr,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

/// One change to the durable definitions.
#[derive(Debug, Clone)]
pub enum DefChange {
    Exchange(ExchangeDef),
    DeleteExchange(ShortStr),
    Queue(QueueDef),
    DeleteQueue(ShortStr),
    Bind(BindingDef),
    Unbind(BindingDef),
}

/// The durable definitions of a vhost, in declaration order.
#[derive(Debug, Default, Clone)]
pub struct VhostDefs {
    pub exchanges: Vec<ExchangeDef>,
    pub queues: Vec<QueueDef>,
    pub bindings: Vec<BindingDef>,
}

impl VhostDefs {
    /// Applies a change as the live vhost did: deletes take the bindings from and to the object.
    pub fn apply(&mut self, c: DefChange) {
        match c {
            DefChange::Exchange(e) => {
                if !self.exchanges.iter().any(|x| x.name == e.name) {
                    self.exchanges.push(e);
                }
            }
            DefChange::DeleteExchange(n) => {
                self.exchanges.retain(|x| x.name != n);
                self.bindings
                    .retain(|b| b.source != n && (b.to_queue || b.destination != n));
            }
            DefChange::Queue(q) => {
                if !self.queues.iter().any(|x| x.name == q.name) {
                    self.queues.push(q);
                }
            }
            DefChange::DeleteQueue(n) => {
                self.queues.retain(|x| x.name != n);
                self.bindings
                    .retain(|b| !(b.to_queue && b.destination == n));
            }
            DefChange::Bind(b) => {
                if !self.bindings.contains(&b) {
                    self.bindings.push(b);
                }
            }
            DefChange::Unbind(b) => self.bindings.retain(|x| *x != b),
        }
    }

    fn changes(&self) -> impl Iterator<Item = DefChange> + '_ {
        self.exchanges
            .iter()
            .cloned()
            .map(DefChange::Exchange)
            .chain(self.queues.iter().cloned().map(DefChange::Queue))
            .chain(self.bindings.iter().cloned().map(DefChange::Bind))
    }
}

/// The open definitions log of a vhost.
#[derive(Debug)]
pub struct DefinitionsLog {
    path: PathBuf,
    file: Mutex<File>,
}

pub fn definitions_path(vhost_dir: &Path) -> PathBuf {
    vhost_dir.join("definitions.log")
}

impl DefinitionsLog {
    /// Replays the log (reporting damage into `issues`), rewrites it compacted and opens it
    /// for appending.
    pub fn open(
        vhost_dir: &Path,
        issues: &mut Vec<Issue>,
    ) -> std::io::Result<(DefinitionsLog, VhostDefs)> {
        let path = definitions_path(vhost_dir);
        let mut defs = VhostDefs::default();
        match std::fs::read(&path) {
            Ok(data) => {
                for item in record::Reader::new(Bytes::from(data)) {
                    match item {
                        Item::Record { offset, payload } => match decode(payload) {
                            Ok(c) => defs.apply(c),
                            Err(Malformed) => issues.push(Issue {
                                file: path.clone(),
                                offset,
                                kind: IssueKind::Malformed,
                            }),
                        },
                        Item::Corrupt { offset, .. } => issues.push(Issue {
                            file: path.clone(),
                            offset,
                            kind: IssueKind::Corrupt,
                        }),
                        Item::Torn { offset } => issues.push(Issue {
                            file: path.clone(),
                            offset,
                            kind: IssueKind::TornTail,
                        }),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut out = Vec::new();
        for c in defs.changes() {
            record::append(&mut out, |o| encode(o, &c));
        }
        let tmp = vhost_dir.join("definitions.log.tmp");
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        File::open(vhost_dir)?.sync_all()?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            DefinitionsLog {
                path,
                file: Mutex::new(file),
            },
            defs,
        ))
    }

    /// Appends one change and syncs it. A failure is logged: the change stays in effect in
    /// memory but may not survive a restart.
    pub fn record(&self, c: &DefChange) {
        let mut buf = Vec::with_capacity(128);
        record::append(&mut buf, |o| encode(o, c));
        let mut f = self.file.lock();
        if let Err(e) = f.write_all(&buf).and_then(|_| f.sync_data()) {
            tracing::error!(path = %self.path.display(), error = %e, "could not record a durable definition");
        }
    }
}

fn flags(bits: &[bool]) -> u8 {
    bits.iter()
        .enumerate()
        .fold(0u8, |acc, (i, b)| acc | ((*b as u8) << i))
}

fn kind_code(k: ExchangeKind) -> u8 {
    match k {
        ExchangeKind::Direct => 0,
        ExchangeKind::Fanout => 1,
        ExchangeKind::Topic => 2,
        ExchangeKind::Headers => 3,
    }
}

fn encode(o: &mut Vec<u8>, c: &DefChange) {
    match c {
        DefChange::Exchange(e) => {
            o.push(REC_EXCHANGE);
            put_short(o, e.name.as_bytes());
            o.push(kind_code(e.kind));
            o.push(flags(&[e.auto_delete, e.internal]));
            put_table(o, &e.arguments);
        }
        DefChange::DeleteExchange(n) => {
            o.push(REC_DEL_EXCHANGE);
            put_short(o, n.as_bytes());
        }
        DefChange::Queue(q) => {
            o.push(REC_QUEUE);
            put_short(o, q.name.as_bytes());
            o.push(flags(&[q.auto_delete]));
            put_table(o, &q.arguments);
        }
        DefChange::DeleteQueue(n) => {
            o.push(REC_DEL_QUEUE);
            put_short(o, n.as_bytes());
        }
        DefChange::Bind(b) | DefChange::Unbind(b) => {
            o.push(if matches!(c, DefChange::Bind(_)) {
                REC_BIND
            } else {
                REC_UNBIND
            });
            put_short(o, b.source.as_bytes());
            o.push(b.to_queue as u8);
            put_short(o, b.destination.as_bytes());
            put_short(o, b.routing_key.as_bytes());
            put_table(o, &b.arguments);
        }
    }
}

fn short(f: &mut Fields) -> Result<ShortStr, Malformed> {
    ShortStr::from_bytes(f.short()?).map_err(|_| Malformed)
}

fn decode(payload: Bytes) -> Result<DefChange, Malformed> {
    let mut f = Fields::new(payload);
    let c = match f.u8()? {
        REC_EXCHANGE => {
            let name = short(&mut f)?;
            let kind = match f.u8()? {
                0 => ExchangeKind::Direct,
                1 => ExchangeKind::Fanout,
                2 => ExchangeKind::Topic,
                3 => ExchangeKind::Headers,
                _ => return Err(Malformed),
            };
            let fl = f.u8()?;
            DefChange::Exchange(ExchangeDef {
                name,
                kind,
                auto_delete: fl & 1 != 0,
                internal: fl & 2 != 0,
                arguments: f.table()?,
            })
        }
        REC_DEL_EXCHANGE => DefChange::DeleteExchange(short(&mut f)?),
        REC_QUEUE => {
            let name = short(&mut f)?;
            let fl = f.u8()?;
            DefChange::Queue(QueueDef {
                name,
                auto_delete: fl & 1 != 0,
                arguments: f.table()?,
            })
        }
        REC_DEL_QUEUE => DefChange::DeleteQueue(short(&mut f)?),
        t @ (REC_BIND | REC_UNBIND) => {
            let b = BindingDef {
                source: short(&mut f)?,
                to_queue: f.u8()? != 0,
                destination: short(&mut f)?,
                routing_key: short(&mut f)?,
                arguments: f.table()?,
            };
            if t == REC_BIND {
                DefChange::Bind(b)
            } else {
                DefChange::Unbind(b)
            }
        }
        _ => return Err(Malformed),
    };
    if !f.is_empty() {
        return Err(Malformed);
    }
    Ok(c)
}
