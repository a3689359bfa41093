//! Read validation (`nadc_core::read::ReadInput::validate`) on arbitrary
//! field values: any strings, any floats (NaN, infinities, -0.0,
//! subnormals), any integers, any number of candidates.
//!
//! Input: bytes decoded by `arbitrary` into the fields of a `ReadInput`.
//!
//! Properties:
//! - validation never panics;
//! - an accepted read holds every documented invariant and is the input
//!   trimmed, rounded and normalised (`nadc_fuzz::check_accepted_read`);
//! - a refusal's message never contains the plate (the normalised VRM,
//!   when it is plate-like: 5 or more characters with a letter and a digit,
//!   and not also part of another field the message might quote);
//! - `Debug` of an accepted read does not show the plate.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nadc_core::read::ReadInput;
use nadc_core::{Timestamp, Vrm};
use nadc_fuzz::check_accepted_read;

#[derive(Arbitrary, Debug)]
struct Input {
    read_id: String,
    vrm: String,
    observed_ms: Option<i64>,
    camera_id: String,
    lat: Option<f64>,
    lon: Option<f64>,
    bearing: Option<f64>,
    lane: Option<u32>,
    confidence: Option<f32>,
    make: Option<String>,
    model: Option<String>,
    colour: Option<String>,
    country: Option<String>,
    patch_image_ref: Option<String>,
    overview_image_ref: Option<String>,
    candidates: Vec<String>,
}

fuzz_target!(|i: Input| {
    let input = ReadInput {
        read_id: i.read_id,
        vrm: i.vrm,
        observed_at: i.observed_ms.map(Timestamp::from_millis),
        camera_id: i.camera_id,
        lat: i.lat,
        lon: i.lon,
        bearing: i.bearing,
        lane: i.lane,
        confidence: i.confidence,
        make: i.make,
        model: i.model,
        colour: i.colour,
        country: i.country,
        patch_image_ref: i.patch_image_ref,
        overview_image_ref: i.overview_image_ref,
        candidates: i.candidates,
    };
    // Debug of the raw input shows two characters of the VRM at most.
    let mut other = input.clone();
    other.vrm = input
        .vrm
        .chars()
        .enumerate()
        .map(|(i, c)| if i < 2 { c } else { '#' })
        .collect();
    assert_eq!(
        format!("{input:?}"),
        format!("{other:?}"),
        "ReadInput Debug shows the VRM"
    );
    match input.clone().validate() {
        Ok(read) => {
            check_accepted_read(&input, &read);
            // Debug never shows the plate beyond its first two characters:
            // it does not change when the rest of the plate does.
            let s = read.vrm.as_str();
            let masked: String = s
                .bytes()
                .enumerate()
                .map(|(i, b)| match (i < 2, b) {
                    (true, _) => char::from(b),
                    (false, b'9') => '8',
                    (false, _) => '9',
                })
                .collect();
            let mut other = read.clone();
            other.vrm = Vrm::normalise(&masked).expect("a plate of A-Z0-9");
            assert_eq!(
                format!("{read:?}"),
                format!("{other:?}"),
                "Debug shows the plate"
            );
        }
        Err(e) => {
            let others = [&input.read_id, &input.camera_id]
                .into_iter()
                .chain(input.candidates.iter())
                .chain(
                    [&input.make, &input.model, &input.colour, &input.country]
                        .into_iter()
                        .flatten(),
                );
            // A plate-like text: the normalised VRM, with a letter and a digit.
            let Ok(v) = Vrm::normalise(&input.vrm) else {
                return;
            };
            let plate = v.as_str();
            let plate_like = plate.len() >= 5
                && plate.bytes().any(|b| b.is_ascii_uppercase())
                && plate.bytes().any(|b| b.is_ascii_digit());
            let quoted = others
                .into_iter()
                .any(|f| f.to_ascii_uppercase().contains(plate));
            assert!(
                !plate_like || quoted || !e.message.contains(plate),
                "error message discloses the plate: {e}"
            );
        }
    }
});
