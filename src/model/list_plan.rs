//! The rules of list `add` and `sync` (docs/reference/DECISIONS.md, "Lists"), as a pure
//! function from what the catalog holds and what the upstream listed to
//! what must change. Backends read the snapshot and apply the plan inside
//! one transaction; the rules live here, once.

use std::collections::{HashMap, HashSet};

use super::observed::ObservedMedia;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListMode {
    /// Non-destructive: queue what is new, never remove, never move the
    /// baseline.
    Add,
    /// Authoritative: compare with the baseline, remove what left the list
    /// (unless another list owns it), re-queue what changed.
    Sync,
}

/// What the catalog holds for one media item of the connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Cached {
    pub fingerprint: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub has_baseline: bool,
    /// Members of this list: media ID -> in the sync baseline.
    pub members: HashMap<String, bool>,
    /// Media of the connection that is cached (has a live variant).
    pub cached: HashMap<String, Cached>,
    /// Media that some other list of the connection holds.
    pub owned_elsewhere: HashSet<String>,
}

/// One add or sync of a list, applied page by page (each page in its own
/// transaction). Fixed when it begins, so every page is planned against
/// the list as it was then: a page must not see the baseline that this very
/// run will record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListRun {
    pub mode: ListMode,
    /// Whether a sync had completed before this run began.
    pub has_baseline: bool,
    /// This run's mark on the members it lists (it only grows, per list):
    /// a sync's last step removes the baseline members left unmarked.
    pub generation: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListCounts {
    pub seen: u64,
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub adopted: u64,
}

impl std::ops::AddAssign for ListCounts {
    fn add_assign(&mut self, o: Self) {
        self.seen += o.seen;
        self.added += o.added;
        self.updated += o.updated;
        self.removed += o.removed;
        self.unchanged += o.unchanged;
        self.adopted += o.adopted;
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub counts: ListCounts,
    /// Media to delete entirely (gone from the list, or stale before it is
    /// queued again).
    pub remove: Vec<String>,
    /// Indexes of observed items to record and queue for storing.
    pub queue: Vec<usize>,
    /// Indexes of observed items that stay as they are but whose upstream
    /// URLs are refreshed.
    pub refresh: Vec<usize>,
    /// Indexes of observed items that are (now) members of the list.
    pub members: Vec<usize>,
    /// Members that left the list.
    pub drop_members: Vec<String>,
    /// The list has a baseline after this (sync always records one).
    pub baseline: bool,
}

pub fn plan(mode: ListMode, snap: &Snapshot, observed: &[ObservedMedia]) -> Plan {
    let mut p = Plan {
        baseline: snap.has_baseline || mode == ListMode::Sync,
        ..Plan::default()
    };
    p.counts.seen = observed.len() as u64;
    let first_sync = mode == ListMode::Sync && !snap.has_baseline;
    let mut present = HashSet::with_capacity(observed.len());
    for (i, item) in observed.iter().enumerate() {
        let id = item.media_id.as_str();
        present.insert(id);
        if !item.admitted {
            continue;
        }
        p.members.push(i);
        let cached = snap.cached.get(id);
        let member = snap.members.get(id);
        let in_baseline = member.copied().unwrap_or(false);
        match (mode, cached) {
            (_, None) => {
                p.counts.added += 1;
                p.queue.push(i);
            }
            (ListMode::Add, Some(_)) if member.is_some() => {
                p.counts.unchanged += 1;
                p.refresh.push(i);
            }
            (ListMode::Add, Some(_)) => {
                p.counts.adopted += 1;
                p.refresh.push(i);
            }
            (ListMode::Sync, Some(_)) if first_sync || !in_baseline => {
                p.counts.adopted += 1;
                p.refresh.push(i);
            }
            (ListMode::Sync, Some(c)) => {
                let changed = c
                    .fingerprint
                    .as_deref()
                    .is_some_and(|f| !item.fingerprint.is_empty() && f != item.fingerprint);
                if changed {
                    p.counts.updated += 1;
                    p.remove.push(id.to_owned());
                    p.queue.push(i);
                } else {
                    p.counts.unchanged += 1;
                    p.refresh.push(i);
                }
            }
        }
    }
    if mode == ListMode::Sync && !first_sync {
        let mut gone: Vec<&String> = snap
            .members
            .iter()
            .filter(|(id, in_baseline)| **in_baseline && !present.contains(id.as_str()))
            .map(|(id, _)| id)
            .collect();
        gone.sort();
        for id in gone {
            p.drop_members.push(id.clone());
            if !snap.owned_elsewhere.contains(id) && snap.cached.contains_key(id) {
                p.counts.removed += 1;
                p.remove.push(id.clone());
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MediaId, MediaType};

    fn obs(id: &str, fp: &str, admitted: bool) -> ObservedMedia {
        ObservedMedia {
            media_id: MediaId::parse(id).unwrap(),
            media_type: MediaType::Image,
            duration: None,
            fingerprint: fp.into(),
            admitted,
            variants: Vec::new(),
        }
    }

    fn cached(ids: &[(&str, &str)]) -> HashMap<String, Cached> {
        ids.iter()
            .map(|(id, fp)| {
                (
                    id.to_string(),
                    Cached {
                        fingerprint: Some(fp.to_string()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn first_sync_adopts_cached_and_removes_nothing() {
        let snap = Snapshot {
            cached: cached(&[("1", "a")]),
            ..Snapshot::default()
        };
        let p = plan(
            ListMode::Sync,
            &snap,
            &[
                obs("1", "a", true),
                obs("2", "b", true),
                obs("3", "c", false),
            ],
        );
        assert_eq!(
            p.counts,
            ListCounts {
                seen: 3,
                added: 1,
                adopted: 1,
                ..ListCounts::default()
            }
        );
        assert!(p.remove.is_empty() && p.baseline);
        assert_eq!(p.queue, [1]);
        assert_eq!(p.members, [0, 1]);
    }

    #[test]
    fn later_sync_removes_updates_and_keeps_owned() {
        let snap = Snapshot {
            has_baseline: true,
            members: [("1", true), ("2", true), ("3", true), ("4", true)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            cached: cached(&[("1", "a"), ("2", "b"), ("3", "c"), ("4", "d")]),
            owned_elsewhere: ["4".to_string()].into_iter().collect(),
        };
        // 1 unchanged, 2 changed, 3 and 4 gone (4 owned by another list),
        // 5 new.
        let p = plan(
            ListMode::Sync,
            &snap,
            &[
                obs("1", "a", true),
                obs("2", "B", true),
                obs("5", "e", true),
            ],
        );
        assert_eq!(
            p.counts,
            ListCounts {
                seen: 3,
                added: 1,
                updated: 1,
                removed: 1,
                unchanged: 1,
                adopted: 0
            }
        );
        assert_eq!(p.remove, ["2", "3"]);
        assert_eq!(p.drop_members, ["3", "4"]);
        assert_eq!(p.queue, [1, 2]);
    }

    #[test]
    fn add_never_removes_nor_moves_the_baseline() {
        let snap = Snapshot {
            members: [("1".to_string(), false)].into_iter().collect(),
            cached: cached(&[("1", "a"), ("2", "b")]),
            ..Snapshot::default()
        };
        let p = plan(
            ListMode::Add,
            &snap,
            &[
                obs("1", "x", true),
                obs("2", "b", true),
                obs("3", "c", true),
            ],
        );
        assert_eq!(
            p.counts,
            ListCounts {
                seen: 3,
                added: 1,
                unchanged: 1,
                adopted: 1,
                ..ListCounts::default()
            }
        );
        assert!(p.remove.is_empty() && !p.baseline);
    }
}
