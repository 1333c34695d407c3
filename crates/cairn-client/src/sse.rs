//! An incremental parser of `text/event-stream` (Server-Sent Events), as
//! `GET /v1/watch` sends them.

/// One Server-Sent Event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    /// `message` when the stream named none.
    pub event: String,
    pub data: String,
}

/// Feed it chunks as they arrive; it hands out complete events. Comments
/// (heartbeats) are skipped.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    cur: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `chunk`, pushing every event it completes onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some(nl) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl;
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + 1;
            self.line(line.trim_end_matches('\r'), out);
        }
        self.buf.drain(..start);
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                let mut e = std::mem::take(&mut self.cur);
                if e.event.is_empty() {
                    e.event = "message".into();
                }
                out.push(e);
            }
            self.cur = SseEvent::default();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => self.cur.id = Some(value.to_owned()),
            "event" => value.clone_into(&mut self.cur.event),
            "data" => {
                if self.has_data {
                    self.cur.data.push('\n');
                }
                self.cur.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_chunks_comments_and_multiline_data() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b": heartbeat\n\nid: 3\nevent: chan", &mut out);
        assert!(out.is_empty());
        p.feed(b"ge\r\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n", &mut out);
        assert_eq!(
            out,
            vec![
                SseEvent {
                    id: Some("3".into()),
                    event: "change".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    id: None,
                    event: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
    }
}
