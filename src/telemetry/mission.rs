//! Mission figures as gauges: open incidents by priority, open requests, unmet needs, capacity
//! offered and committed per capability, and the correlation's size (active campaigns,
//! indicator values, capped values, late events; hunt indicators published, ALLIANCE
//! releases overridden). The coordinator reads them from its
//! committed state every few seconds ([`MissionGauges::observe`]); they are the picture's
//! running totals, so they agree with the threat-picture topic.

use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts, Registry};
use rallypoint_core::event::{Capability, Priority};
use rallypoint_core::picture::Tally;
use rallypoint_core::state::{read, total_key, PictureStats, PICTURE_STATS};
use rallypoint_core::store::{Store, StoreError};

#[derive(Clone)]
pub struct MissionGauges {
    open_incidents: IntGaugeVec,
    open_requests: IntGauge,
    unmet_needs: IntGauge,
    capacity: IntGaugeVec,
    campaigns: IntGauge,
    indicator_values: IntGauge,
    capped: IntGauge,
    late: IntCounter,
    hunt_indicators: IntGauge,
    hunt_overridden: IntCounter,
    hunt_deferred: IntCounter,
}

use super::register;

fn gauge(reg: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    register(reg, IntGauge::new(name, help))
}

impl MissionGauges {
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            open_incidents: register(
                reg,
                IntGaugeVec::new(
                    Opts::new("rallypoint_open_incidents", "Open incidents, by priority."),
                    &["priority"],
                ),
            )?,
            open_requests: gauge(
                reg,
                "rallypoint_open_requests",
                "Requests for help whose incident is open.",
            )?,
            unmet_needs: gauge(
                reg,
                "rallypoint_unmet_needs",
                "Requested capabilities still missing units: help that no eligible offer covers.",
            )?,
            capacity: register(
                reg,
                IntGaugeVec::new(
                    Opts::new(
                        "rallypoint_capacity_units",
                        "Units of help offered, and committed to proposals and confirmed \
                         assignments, per capability.",
                    ),
                    &["capability", "state"],
                ),
            )?,
            campaigns: gauge(
                reg,
                "rallypoint_campaigns_active",
                "Campaigns that span two or more nations.",
            )?,
            indicator_values: gauge(
                reg,
                "rallypoint_indicator_values",
                "Distinct normalized indicator values in the correlation index.",
            )?,
            capped: gauge(
                reg,
                "rallypoint_indicator_values_capped",
                "Indicator values reported by more incidents than the fan-out cap; they link none.",
            )?,
            late: register(
                reg,
                IntCounter::new(
                    "rallypoint_late_events_total",
                    "Events too late for their window (past the allowed lateness); counted in \
                     the picture's totals, not in a window.",
                ),
            )?,
            hunt_indicators: gauge(
                reg,
                "rallypoint_hunt_indicators",
                "Hunt indicators published on the members' hunt topics and not retired.",
            )?,
            hunt_overridden: register(
                reg,
                IntCounter::new(
                    "rallypoint_hunt_release_overridden_total",
                    "Incidents that asked for ALLIANCE release of their indicators, which their \
                     AMBER_STRICT or RED marking overrode: nothing of theirs was released.",
                ),
            )?,
            hunt_deferred: register(
                reg,
                IntCounter::new(
                    "rallypoint_hunt_deferred_total",
                    "Hunt indicators held back to the next hour of stream time because \
                     hunt.max_new_per_hour were newly published in the hour.",
                ),
            )?,
        })
    }

    /// Reads the figures from the coordinator's committed state.
    pub fn observe<S: Store + ?Sized>(&self, store: &S) -> Result<(), StoreError> {
        let alliance: Tally = read(store, &total_key("alliance"))?.unwrap_or_default();
        self.open_requests.set(alliance.open_requests);
        self.unmet_needs.set(alliance.unmet_needs);
        for c in Capability::ALL {
            let (offered, committed) = alliance.capacity.get(&c).copied().unwrap_or_default();
            self.capacity
                .with_label_values(&[c.as_str(), "offered"])
                .set(offered);
            self.capacity
                .with_label_values(&[c.as_str(), "committed"])
                .set(committed);
        }
        for p in Priority::ALL {
            let name = p.as_str();
            let t: Tally =
                read(store, &total_key(&format!("priority:{name}")))?.unwrap_or_default();
            self.open_incidents
                .with_label_values(&[name])
                .set(t.open_incidents);
        }
        let stats: PictureStats = read(store, PICTURE_STATS)?.unwrap_or_default();
        self.campaigns.set(stats.active_campaigns);
        self.indicator_values.set(stats.indicator_values as i64);
        self.capped.set(stats.capped_values as i64);
        let seen = self.late.get();
        if stats.late_events > seen {
            self.late.inc_by(stats.late_events - seen);
        }
        self.hunt_indicators.set(stats.hunt_indicators);
        let seen = self.hunt_overridden.get();
        if stats.hunt_overridden > seen {
            self.hunt_overridden.inc_by(stats.hunt_overridden - seen);
        }
        let seen = self.hunt_deferred.get();
        if stats.hunt_deferred > seen {
            self.hunt_deferred.inc_by(stats.hunt_deferred - seen);
        }
        Ok(())
    }
}
