//! The threat picture's tallies: updated by the handlers, published at most once per interval
//! of stream time per key, and dropped once their window has closed. See [`crate::picture`].

use super::{CoreConfig, Fold, Output};
use crate::event::Capability;
use crate::picture::{self, nation_scope, window_open, window_start, PictureUpdate, Tally};
use crate::state::*;
use crate::store::{StoreError, StoreMut};

impl<S: StoreMut> Fold<'_, '_, S> {
    /// Changes the running totals of `scopes`.
    pub(super) fn totals(
        &mut self,
        scopes: &[String],
        change: impl Fn(&mut Tally),
    ) -> Result<(), StoreError> {
        for scope in scopes {
            self.tally(total_key(scope), &change)?;
        }
        Ok(())
    }

    /// Changes the windows holding event time `t` in each of `scopes`. In a scope where a
    /// window has closed for good, the event is counted as late in the total instead.
    pub(super) fn windows(
        &mut self,
        scopes: &[String],
        t: i64,
        change: impl Fn(&mut Tally),
    ) -> Result<(), StoreError> {
        // The configuration outlives the fold: no copy of the sizes per event.
        let cfg = &self.config.picture;
        let (sizes, lateness) = (&cfg.windows_ms, cfg.allowed_lateness_ms);
        let mut late = false;
        for scope in scopes {
            let mut late_here = false;
            for &size in sizes {
                let start = window_start(t, size);
                let end = start.saturating_add(size);
                if !window_open(end, lateness, self.now) {
                    late_here = true;
                    continue;
                }
                let key = window_key(scope, size, start);
                if !self.tallies.contains(&*self.st.store, &key)? {
                    let closing = end.saturating_add(lateness);
                    self.st.mark(&timed(CLOSING, closing, tally_id(&key)));
                }
                self.tally(key, &change)?;
            }
            if late_here {
                late = true;
                self.tally(total_key(scope), &|t: &mut Tally| t.late += 1)?;
            }
        }
        if late {
            self.stats(|s| s.late_events += 1)?;
        }
        Ok(())
    }

    /// Offered and committed capacity of an offering nation, and of the alliance.
    pub(super) fn capacity(
        &mut self,
        nation: &str,
        c: Capability,
        offered: i64,
        committed: i64,
    ) -> Result<(), StoreError> {
        if offered == 0 && committed == 0 {
            return Ok(());
        }
        let scopes = ["alliance".to_owned(), nation_scope(nation)];
        self.totals(&scopes, |t| {
            let figure = t.capacity.entry(c).or_default();
            figure.0 += offered;
            figure.1 += committed;
        })
    }

    pub(super) fn stats(
        &mut self,
        change: impl FnOnce(&mut PictureStats),
    ) -> Result<(), StoreError> {
        let mut stats: PictureStats = self.st.load(PICTURE_STATS)?.unwrap_or_default();
        change(&mut stats);
        self.st.save(PICTURE_STATS, &stats);
        Ok(())
    }

    fn tally(&mut self, key: Vec<u8>, change: &impl Fn(&mut Tally)) -> Result<(), StoreError> {
        change(self.tallies.entry(&*self.st.store, &key)?);
        self.touched.insert(key);
        Ok(())
    }

    /// Publishes each tally this event changed, unless it was published less than an interval
    /// ago: then it is scheduled for when the interval has passed.
    pub(super) fn publish_touched(&mut self) -> Result<(), StoreError> {
        let interval = self.config.picture.emit_interval_ms;
        for key in std::mem::take(&mut self.touched) {
            let t = self.tallies.entry(&*self.st.store, &key)?;
            if t.scheduled.is_some() {
                continue;
            }
            match t.last_emitted.map(|last| last.saturating_add(interval)) {
                Some(due) if due > self.now => {
                    t.scheduled = Some(due);
                    self.st.mark(&timed(PUBLISH, due, tally_id(&key)));
                }
                _ => {
                    self.outputs
                        .extend(tally_output(&key, t, self.now, self.config));
                    t.last_emitted = Some(self.now);
                }
            }
        }
        Ok(())
    }

    /// Publishes the tallies whose time has come, and closes windows past their lateness:
    /// last publication if one is pending, then out of the state.
    pub(super) fn picture_due(&mut self) -> Result<(), StoreError> {
        for id in self.due(PUBLISH)? {
            let key = [TALLIES, id.as_bytes()].concat();
            if let Some(t) = self.tallies.existing(&*self.st.store, &key)? {
                if let Some(at) = t.scheduled.take() {
                    self.st.remove(&timed(PUBLISH, at, &id));
                }
                self.outputs
                    .extend(tally_output(&key, t, self.now, self.config));
                t.last_emitted = Some(self.now);
            }
        }
        let closing: Vec<(i64, String)> = self.due_with_time(CLOSING)?;
        for (at, id) in closing {
            let key = [TALLIES, id.as_bytes()].concat();
            self.st.remove(&timed(CLOSING, at, &id));
            if let Some(t) = self.tallies.existing(&*self.st.store, &key)? {
                if let Some(due) = t.scheduled {
                    self.st.remove(&timed(PUBLISH, due, &id));
                    self.outputs
                        .extend(tally_output(&key, t, self.now, self.config));
                }
                self.tallies.remove(&key);
            }
        }
        Ok(())
    }
}

/// The publication of the tally at `key`, as of stream time `now`.
fn tally_output(key: &[u8], t: &Tally, now: i64, config: &CoreConfig) -> Option<Output> {
    let (scope, size, start) = parse_tally_key(key)?;
    let published = if size == 0 {
        format!("{scope}/total")
    } else {
        format!("{scope}/{size}/{start}")
    };
    let record = picture::publish(
        &published,
        &scope,
        (size, start),
        now,
        t,
        config.picture.top,
    );
    Some(Output::Picture(PictureUpdate::Picture(record)))
}

/// A tally key without its `p/` prefix: how the time indexes name it.
fn tally_id(key: &[u8]) -> &str {
    std::str::from_utf8(&key[TALLIES.len()..]).unwrap_or_default()
}
