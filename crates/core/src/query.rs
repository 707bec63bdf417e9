//! Read-only views of the state for the query API: the picture of a scope, the active
//! campaigns, the open requests. Each function only reads the [`Store`] it is given, so the
//! coordinator answers from committed state. The picture and the campaigns are the coordination
//! cell's views; the open requests are redacted for the role that asks, by the same TLP 2.0
//! rules as the decisions ([`crate::tlp::visibility`]): the cell sees RED ids and capability
//! only, the requesting nation sees its own requests in full.

use serde::{Deserialize, Serialize};

use crate::event::{Capability, Priority, Sector, Tlp};
use crate::picture::{self, Campaign, CampaignStatus, Tally, ThreatPicture};
use crate::state::*;
use crate::store::{Store, StoreError};
use crate::tlp::{visibility, Role, Visibility};

/// The running total and the open windows of one scope, e.g. `alliance` or `nation:EST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopePicture {
    pub scope: String,
    pub stream_time: i64,
    pub total: Option<ThreatPicture>,
    pub windows: Vec<ThreatPicture>,
}

pub fn scope_picture<S: Store + ?Sized>(
    store: &S,
    scope: &str,
    top: usize,
) -> Result<ScopePicture, StoreError> {
    let now = stream_time(store)?;
    let prefix = format!("p/{scope}/").into_bytes();
    let mut out = ScopePicture {
        scope: scope.to_owned(),
        stream_time: now,
        total: None,
        windows: Vec::new(),
    };
    for (key, bytes) in store.scan_prefix(&prefix)? {
        let Some((scope, size, start)) = parse_tally_key(&key) else {
            continue;
        };
        let tally: Tally = decode(&key, &bytes)?;
        let published = if size == 0 {
            format!("{scope}/total")
        } else {
            format!("{scope}/{size}/{start}")
        };
        let p = picture::publish(&published, &scope, (size, start), now, &tally, top);
        if size == 0 {
            out.total = Some(p);
        } else {
            out.windows.push(p);
        }
    }
    Ok(out)
}

/// At most this many incident ids and indicators are listed in a campaign record; the counts
/// give the whole.
pub const LIST_MAX: usize = 100;

/// A campaign as published, from the figures the correlation keeps: the nations of every
/// member; ids and linking indicators (reported by two or more) of the non-RED ones only,
/// the first [`LIST_MAX`] of each.
pub fn campaign_from_state<S: Store + ?Sized>(
    store: &S,
    state: &CampaignState,
    status: CampaignStatus,
    merged_into: Option<&str>,
    now: i64,
) -> Result<Campaign, StoreError> {
    Ok(Campaign {
        campaign_id: state.public.clone().unwrap_or_default(),
        status,
        merged_into: merged_into.map(str::to_owned),
        stream_time: now,
        nations: state.nations.keys().cloned().collect(),
        incident_count: state.members.len() as i64,
        red_incidents: state.red.len() as i64,
        incidents: state
            .members
            .iter()
            .filter(|m| state.red.binary_search(m).is_err())
            .take(LIST_MAX)
            .cloned()
            .collect(),
        indicators: state
            .counts
            .iter()
            .filter(|(_, n)| **n >= 2)
            .map(|(k, _)| k.clone())
            .take(LIST_MAX)
            .collect(),
        sighted_in: crate::state::sighted_in(store, state)?,
    })
}

/// Every campaign that spans two or more nations now.
pub fn active_campaigns<S: Store + ?Sized>(store: &S) -> Result<Vec<Campaign>, StoreError> {
    let now = stream_time(store)?;
    let mut out = Vec::new();
    for (key, bytes) in store.scan_prefix(b"k/")? {
        let state: CampaignState = decode(&key, &bytes)?;
        if !state.active {
            continue;
        }
        out.push(campaign_from_state(
            store,
            &state,
            CampaignStatus::Active,
            None,
            now,
        )?);
    }
    out.sort_by(|a, b| a.campaign_id.cmp(&b.campaign_id));
    Ok(out)
}

/// One capability of an open request, and how far it is covered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedView {
    pub capability: Capability,
    pub units: i32,
    pub covered: i32,
    pub missing: i32,
}

/// A request whose incident is open.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenRequest {
    pub request_id: String,
    pub incident_id: String,
    pub nation: String,
    pub tlp: Tlp,
    /// Left out where the viewer may not see them (the cell, under RED).
    pub priority: Option<Priority>,
    pub sector: Option<Sector>,
    pub requested_at: i64,
    pub needs: Vec<NeedView>,
    pub assignments: Vec<String>,
}

/// Open requests, of one nation or all, oldest first, each redacted to what `viewer` may see
/// of its incident: [`Role::Cell`] for the coordination cell, [`Role::Requester`] for a
/// nation reading its own requests.
pub fn open_requests<S: Store + ?Sized>(
    store: &S,
    nation: Option<&str>,
    viewer: Role,
) -> Result<Vec<OpenRequest>, StoreError> {
    let mut out = Vec::new();
    for (key, _) in store.scan_prefix(OPEN_REQUESTS)? {
        let id = String::from_utf8_lossy(&key[OPEN_REQUESTS.len()..]).into_owned();
        let Some(r) = read::<Request, S>(store, &request_key(&id))? else {
            continue;
        };
        if nation.is_some_and(|n| n != r.nation) {
            continue;
        }
        let Some(i) = read::<Incident, S>(store, &incident_key(&r.incident_id))? else {
            continue;
        };
        let need_to_act = visibility(i.tlp, viewer) >= Visibility::NeedToAct;
        out.push(OpenRequest {
            request_id: r.request_id.clone(),
            incident_id: r.incident_id.clone(),
            nation: r.nation.clone(),
            tlp: i.tlp,
            priority: need_to_act.then_some(i.priority),
            sector: need_to_act.then_some(i.sector),
            requested_at: r.reported_at,
            needs: r
                .needs
                .iter()
                .map(|n| NeedView {
                    capability: n.capability,
                    units: n.units,
                    covered: n.covered,
                    missing: n.missing(),
                })
                .collect(),
            assignments: r.assignments.clone(),
        });
    }
    out.sort_by(|a, b| (a.requested_at, &a.request_id).cmp(&(b.requested_at, &b.request_id)));
    Ok(out)
}
