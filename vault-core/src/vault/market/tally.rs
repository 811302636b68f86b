//! What a seller's node counts of the intentions it holds. A new intention is taken only under
//! the bounds of live ones (per way in, and in all), and counting those from the table meant
//! opening every row, so taking one intention cost more the more were held. The counts are read
//! whole once, then kept while no other connection has committed to the file (SQLite's
//! `data_version`); this connection's own writes move them in place, and a write that fails (or
//! one that does not say what it changed) drops them, to be read whole again on next use.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Deref;

use super::{HeldRecord, Market, ROWS};
use crate::store::StoreError;
use crate::vault::Vault;

/// The counts, valid at the `data_version` they were read at.
#[derive(Default)]
pub(crate) struct MarketTally(RefCell<Option<Counts>>);

impl MarketTally {
    /// Forgets the counts: they are read whole on next use.
    pub(crate) fn clear(&self) {
        self.0.replace(None);
    }
}

#[derive(Default)]
pub(super) struct Counts {
    version: i64,
    /// Intentions not withdrawn, by the way they came, then by their last moment.
    held: HashMap<String, BTreeMap<i64, usize>>,
    /// Withdrawn intentions' marks.
    marks: usize,
}

impl Counts {
    fn take(&mut self, record: &HeldRecord) {
        if record.withdrawn_at.is_some() {
            self.marks += 1;
        } else {
            *self.held.entry(record.via.clone()).or_default().entry(record.until).or_default() += 1;
        }
    }

    fn drop(&mut self, record: &HeldRecord) {
        if record.withdrawn_at.is_some() {
            debug_assert!(self.marks > 0, "a withdrawn mark not counted");
            self.marks = self.marks.saturating_sub(1);
            return;
        }
        let Some(by_until) = self.held.get_mut(&record.via) else {
            debug_assert!(false, "an intention's way in not counted");
            return;
        };
        match by_until.get_mut(&record.until) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    by_until.remove(&record.until);
                }
            }
            None => debug_assert!(false, "an intention's last day not counted"),
        }
        if by_until.is_empty() {
            self.held.remove(&record.via);
        }
    }

    fn moved(&mut self, was: Option<&HeldRecord>, is: Option<&HeldRecord>) {
        if let Some(was) = was {
            self.drop(was);
        }
        if let Some(is) = is {
            self.take(is);
        }
    }

    /// Live intentions (not withdrawn, last moment after `now`) that came by `via`.
    pub(super) fn live_via(&self, via: &str, now: i64) -> usize {
        self.held.get(via).map_or(0, |by_until| live(by_until, now))
    }

    /// Live intentions, whatever way they came.
    pub(super) fn live(&self, now: i64) -> usize {
        self.held.values().map(|by_until| live(by_until, now)).sum()
    }

    /// Withdrawn intentions' marks.
    pub(super) fn marks(&self) -> usize {
        self.marks
    }
}

fn live(by_until: &BTreeMap<i64, usize>, now: i64) -> usize {
    by_until.range(now.saturating_add(1)..).map(|(_, n)| n).sum()
}

impl<V: Deref<Target = Vault>> Market<V> {
    /// Looks at (or moves) the counts, reading the table whole first when they are not known
    /// or another connection wrote since.
    pub(super) fn counts<T>(&self, f: impl FnOnce(&mut Counts) -> T) -> Result<T, StoreError> {
        let version = self.vault.store.data_version()?;
        let mut slot = self.vault.market_tally.0.borrow_mut();
        if slot.as_ref().is_none_or(|c| c.version != version) {
            let mut counts = Counts { version, ..Counts::default() };
            for (_, record) in ROWS.list(&self.vault.store)? {
                counts.take(&record);
            }
            *slot = Some(counts);
        }
        Ok(f(slot.as_mut().expect("just filled")))
    }

    /// This connection committed rows: for each, what it was (`None`: new) and what it is
    /// (`None`: deleted). The counts move only if they were read at the current
    /// `data_version` (which this connection's own commits leave as it is); counts read before
    /// another connection's write are dropped instead (as when the version cannot be read), to
    /// be read whole on next use.
    pub(super) fn written(&self, moves: &[(Option<&HeldRecord>, Option<&HeldRecord>)]) {
        let version = self.vault.store.data_version().ok();
        let mut slot = self.vault.market_tally.0.borrow_mut();
        match slot.as_mut() {
            Some(counts) if Some(counts.version) == version => {
                for (was, is) in moves {
                    counts.moved(*was, *is);
                }
            }
            _ => *slot = None,
        }
    }
}
