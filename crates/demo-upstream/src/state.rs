//! The mutable side of the demo: list membership, media revisions, fault
//! settings and counters. One value behind one mutex; every method is quick
//! and never awaits, so the lock is never held across I/O.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::catalog;
use super::faults::{ApiFault, CdnFault, Dice, FaultPatch, FaultSettings};

struct ListState {
    name: &'static str,
    media: Vec<u64>,
}

/// One list as the discovery endpoint shows it.
pub struct ListSummary {
    pub id: u64,
    pub name: &'static str,
    pub media: Vec<u64>,
}

#[derive(Debug)]
pub enum Missing {
    List,
    Media,
}

#[derive(Clone, Copy, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Counts {
    /// GETs that reached a known rendition, whatever they were answered.
    requests: u64,
    /// Of those, the ones answered 200.
    ok: u64,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    list_requests: u64,
    cdn_requests: u64,
    cdn_ok: u64,
    /// Bad signature, expired or unknown rendition.
    cdn_rejected: u64,
    /// Keyed `{mediaId}/{rendition}`, all revisions together.
    cdn: BTreeMap<String, Counts>,
}

pub struct World {
    lists: BTreeMap<u64, ListState>,
    revisions: HashMap<u64, u32>,
    faults: FaultSettings,
    seed: u64,
    dice: Dice,
    /// CDN requests per (media, revision, rendition) since `failFirst` was
    /// last set: a changed media starts its count afresh.
    fail_first_seen: HashMap<(u64, u32, &'static str), u32>,
    stats: Stats,
    /// Items of the bulk list (`--bulk-items`), kept across resets.
    bulk: u64,
}

impl World {
    /// A world whose bulk list is short (tests).
    #[cfg(test)]
    pub fn new(faults: FaultSettings, seed: u64) -> Self {
        Self::with_bulk(faults, seed, 250)
    }

    pub fn with_bulk(faults: FaultSettings, seed: u64, bulk: u64) -> Self {
        let lists = catalog::initial_lists(bulk)
            .into_iter()
            .map(|l| {
                let state = ListState {
                    name: l.name,
                    media: l.media,
                };
                (l.id, state)
            })
            .collect();
        Self {
            lists,
            revisions: HashMap::new(),
            faults,
            seed,
            dice: Dice::new(seed),
            fail_first_seen: HashMap::new(),
            stats: Stats::default(),
            bulk,
        }
    }

    /// Lists (ordered by ID) from `offset`, at most `limit`, and whether
    /// more follow.
    pub fn lists(&self, offset: usize, limit: usize) -> (Vec<ListSummary>, bool) {
        let page = self
            .lists
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(&id, l)| ListSummary {
                id,
                name: l.name,
                media: l.media.clone(),
            })
            .collect();
        (page, offset.saturating_add(limit) < self.lists.len())
    }

    /// Media IDs with their current revisions, and whether more follow.
    pub fn list_page(
        &self,
        list: u64,
        offset: usize,
        limit: usize,
    ) -> Option<(Vec<(u64, u32)>, bool)> {
        let l = self.lists.get(&list)?;
        let page = l
            .media
            .iter()
            .skip(offset)
            .take(limit)
            .map(|&id| (id, self.revision(id)))
            .collect();
        Some((page, offset.saturating_add(limit) < l.media.len()))
    }

    pub fn revision(&self, media: u64) -> u32 {
        self.revisions.get(&media).copied().unwrap_or(0)
    }

    /// Whether the media was in the list.
    pub fn remove(&mut self, list: u64, media: u64) -> Result<bool, Missing> {
        let l = self.lists.get_mut(&list).ok_or(Missing::List)?;
        let before = l.media.len();
        l.media.retain(|&m| m != media);
        Ok(l.media.len() != before)
    }

    /// Appends a known media to the list; false when it was already there.
    pub fn add(&mut self, list: u64, media: u64) -> Result<bool, Missing> {
        let l = self.lists.get_mut(&list).ok_or(Missing::List)?;
        if catalog::media(media).is_none() {
            return Err(Missing::Media);
        }
        if l.media.contains(&media) {
            return Ok(false);
        }
        l.media.push(media);
        Ok(true)
    }

    /// Bumps the media's revision and returns the new one.
    pub fn change(&mut self, media: u64) -> Option<u32> {
        catalog::media(media)?;
        let rev = self.revisions.entry(media).or_insert(0);
        *rev += 1;
        Some(*rev)
    }

    pub fn faults(&self) -> &FaultSettings {
        &self.faults
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Applies a validated patch.
    pub fn patch_faults(&mut self, patch: &FaultPatch) {
        patch.apply(&mut self.faults);
        if patch.fail_first.is_some() {
            self.fail_first_seen.clear();
        }
        if let Some(seed) = patch.seed {
            self.seed = seed;
            self.dice = Dice::new(seed);
        }
    }

    /// Original lists and revisions, no faults, counters at zero.
    pub fn reset(&mut self, seed: u64) {
        *self = World::with_bulk(FaultSettings::default(), seed, self.bulk);
    }

    pub fn api_request(&mut self) -> ApiFault {
        self.stats.list_requests += 1;
        self.dice.api(&self.faults)
    }

    /// Decides a CDN request for a known rendition. HEAD requests meet the
    /// same faults but are not counted as fetches.
    pub fn cdn_request(
        &mut self,
        media: u64,
        revision: u32,
        label: &'static str,
        counted: bool,
    ) -> CdnFault {
        // Always roll, so HEADs and fail-first answers keep the sequence.
        let rolled = self.dice.cdn(&self.faults);
        if !counted {
            return rolled;
        }
        self.stats.cdn_requests += 1;
        self.stats
            .cdn
            .entry(format!("{media}/{label}"))
            .or_default()
            .requests += 1;
        let seen = self
            .fail_first_seen
            .entry((media, revision, label))
            .or_insert(0);
        *seen += 1;
        if *seen <= self.faults.fail_first {
            return CdnFault::Error;
        }
        rolled
    }

    pub fn cdn_ok(&mut self, media: u64, label: &str) {
        self.stats.cdn_ok += 1;
        self.stats
            .cdn
            .entry(format!("{media}/{label}"))
            .or_default()
            .ok += 1;
    }

    pub fn cdn_rejected(&mut self) {
        self.stats.cdn_rejected += 1;
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHOTO: u64 = catalog::MEDIA_BASE;

    #[test]
    fn remove_add_and_reset() {
        let mut w = World::new(FaultSettings::default(), 1);
        assert!(w.remove(catalog::LIST_PHOTOS, PHOTO).expect("list"));
        assert!(!w.remove(catalog::LIST_PHOTOS, PHOTO).expect("list"));
        assert!(w.add(catalog::LIST_PHOTOS, PHOTO).expect("known"));
        assert!(matches!(
            w.add(catalog::LIST_PHOTOS, 5),
            Err(Missing::Media)
        ));
        assert!(matches!(w.add(9, PHOTO), Err(Missing::List)));
        assert_eq!(w.change(PHOTO), Some(1));
        w.reset(1);
        assert_eq!(w.revision(PHOTO), 0);
    }

    #[test]
    fn fail_first_fails_each_rendition_n_times() {
        let faults = FaultSettings {
            fail_first: 2,
            ..Default::default()
        };
        let mut w = World::new(faults, 1);
        let got: Vec<_> = (0..3)
            .map(|_| w.cdn_request(PHOTO, 0, "full", true))
            .collect();
        assert_eq!(got, [CdnFault::Error, CdnFault::Error, CdnFault::None]);
        assert_eq!(w.cdn_request(PHOTO, 0, "thumb", true), CdnFault::Error);
        // A new revision is a new file: it fails afresh.
        assert_eq!(w.cdn_request(PHOTO, 1, "full", true), CdnFault::Error);
    }

    #[test]
    fn paging_reports_has_more() {
        let w = World::new(FaultSettings::default(), 1);
        let (page, more) = w.list_page(catalog::LIST_LARGE, 990, 100).expect("list");
        assert_eq!((page.len(), more), (10, false));
        let (page, more) = w.list_page(catalog::LIST_LARGE, 0, 100).expect("list");
        assert_eq!((page.len(), more), (100, true));
        let (lists, more) = w.lists(0, 10);
        assert_eq!((lists.len(), more), (7, false));
        let (page, more) = w.list_page(catalog::LIST_BULK, 200, 100).expect("list");
        assert_eq!((page.len(), more), (50, false));
    }
}
