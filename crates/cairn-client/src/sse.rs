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
    /// `buf[..scanned]` holds no newline (so each byte is scanned once).
    scanned: usize,
    /// The current line outgrew [`MAX_LINE`]: dropped up to its newline.
    skipping: bool,
    cur: SseEvent,
    has_data: bool,
}

/// The longest line kept (a watch event is a few hundred bytes); a longer
/// one, from a misbehaving server, is dropped rather than buffered.
pub const MAX_LINE: usize = 1 << 20;

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse `chunk`, pushing every event it completes onto `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(nl) = self.buf[from..].iter().position(|b| *b == b'\n') {
            let end = from + nl;
            if std::mem::take(&mut self.skipping) {
                // The tail of an overlong line.
            } else {
                let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
                self.line(line.trim_end_matches('\r'), out);
            }
            start = end + 1;
            from = start;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            self.buf.clear();
            self.skipping = true;
        }
        self.scanned = self.buf.len();
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
    fn byte_by_byte_and_overlong_lines() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for b in b"id: 7\nevent: change\ndata: {\"revision\":7}\n\n" {
            p.feed(&[*b], &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id.as_deref(), Some("7"));
        assert_eq!(out[0].data, r#"{"revision":7}"#);
        // A line past MAX_LINE is dropped whole; the stream goes on after it.
        out.clear();
        p.feed(b"data: ", &mut out);
        let big = vec![b'x'; 64 * 1024];
        for _ in 0..(MAX_LINE / big.len() + 2) {
            p.feed(&big, &mut out);
        }
        assert!(p.buf.len() <= MAX_LINE + big.len());
        p.feed(b"xxx\n\nid: 8\ndata: ok\n\n", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            (out[0].id.as_deref(), out[0].data.as_str()),
            (Some("8"), "ok")
        );
    }

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
