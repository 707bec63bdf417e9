//! Typed records by name: which input event, decision or picture record a name stands for,
//! read from any [`Parse`] source (an Avro value, a JSON object).

use rallypoint_core::decision::Decision;
use rallypoint_core::event::{Event, Parse};
use rallypoint_core::picture::{Campaign, PictureUpdate};
use rallypoint_core::{RejectReason, Rejection};

pub(super) fn event_from(name: &str, src: &impl Parse) -> Result<Event, Rejection> {
    match Event::parse(name, src) {
        Some(parsed) => parsed.map_err(|e| undecodable(format!("{name}: {e}"))),
        None => Err(Rejection::new(
            RejectReason::UnknownSchema,
            format!("{name:?} is not an input event type"),
        )),
    }
}

pub(super) fn decision_from(name: &str, src: &impl Parse) -> Result<Decision, Rejection> {
    let bad = |e: String| undecodable(format!("{name}: {e}"));
    Ok(match name {
        "AssignmentProposed" => Decision::AssignmentProposed(src.parse().map_err(bad)?),
        "AssignmentConfirmed" => Decision::AssignmentConfirmed(src.parse().map_err(bad)?),
        "AssignmentCancelled" => Decision::AssignmentCancelled(src.parse().map_err(bad)?),
        "AssistanceUnmet" => Decision::AssistanceUnmet(src.parse().map_err(bad)?),
        other => {
            return Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("{other:?} is not a decision type"),
            ))
        }
    })
}

pub(super) fn picture_from(name: &str, src: &impl Parse) -> Result<PictureUpdate, Rejection> {
    let bad = |e: String| undecodable(format!("{name}: {e}"));
    Ok(match name {
        "ThreatPicture" => PictureUpdate::Picture(src.parse().map_err(bad)?),
        "CampaignDetected" => {
            PictureUpdate::CampaignDetected(src.parse::<CampaignRecord>().map_err(bad)?.campaign)
        }
        "CampaignUpdated" => {
            PictureUpdate::CampaignUpdated(src.parse::<CampaignRecord>().map_err(bad)?.campaign)
        }
        other => {
            return Err(Rejection::new(
                RejectReason::UnknownSchema,
                format!("{other:?} is not a threat-picture record"),
            ))
        }
    })
}

/// `CampaignDetected` and `CampaignUpdated`: a campaign in a record of its own name.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct CampaignRecord {
    pub(super) campaign: Campaign,
}

pub(super) fn undecodable(detail: impl Into<String>) -> Rejection {
    Rejection::new(RejectReason::Undecodable, detail)
}
