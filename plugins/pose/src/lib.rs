//! Top-down human pose estimation as a CLASP task plugin (issue #5, in progress).
//!
//! Built so far: COCO keypoint evaluation ([`coco_eval`]) equal to pycocotools' `COCOeval` with
//! `iouType="keypoints"`, checked on committed fixtures. The heatmap head, the loss, decoding and
//! the export arrive next; until then this crate is a library.

pub mod coco_eval;
