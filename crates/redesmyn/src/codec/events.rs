//! Stream events as the native JSON objects: `{"row": i, "prediction": <chunk>}`
//! for each chunk and `{"row": i, "done": true}` as each row ends, rows
//! counted within the request. SSE frames and in-process streams carry the
//! same objects.

use super::predictions::write_row;
use crate::stream::Event;

/// Calls `each` with the JSON text of every object a step makes, in
/// order; a failure is not an object here (each transport says it its way).
pub fn each_object(event: &Event, mut each: impl FnMut(&[u8])) {
    let Event::Step { chunks, ended } = event else { return };
    let mut json = Vec::with_capacity(64);
    for (row, value) in chunks {
        json.clear();
        json.extend_from_slice(b"{\"row\":");
        json.extend_from_slice(row.to_string().as_bytes());
        json.extend_from_slice(b",\"prediction\":");
        write_row(&mut json, value, 0);
        json.push(b'}');
        each(&json);
    }
    for row in ended {
        each(format!("{{\"row\":{row},\"done\":true}}").as_bytes());
    }
}

/// The objects of `event` as one JSON array.
pub fn array(event: &Event) -> Vec<u8> {
    let mut out = vec![b'['];
    each_object(event, |json| {
        if out.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(json);
    });
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Predictions;
    use polars::prelude::*;

    #[test]
    fn a_step_is_its_chunks_then_its_ends() {
        let chunk = Predictions::Column(Series::new("w".into(), ["hi"]));
        let event = Event::Step { chunks: vec![(1, chunk)], ended: vec![0, 1] };
        assert_eq!(
            String::from_utf8(array(&event)).unwrap(),
            r#"[{"row":1,"prediction":"hi"},{"row":0,"done":true},{"row":1,"done":true}]"#
        );
    }
}
