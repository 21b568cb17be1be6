//! A small XML reader for annotation files (Pascal VOC): elements, attributes, text, comments,
//! processing instructions, CDATA and the five predefined entities plus character references.
//! Iterative (no recursion), so hostile nesting cannot overflow the stack; every error carries
//! the 1-based line and column.

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
    /// 1-based line of the start tag.
    pub line: usize,
    pub column: usize,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

pub(crate) struct XmlError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn line_col(&self, pos: usize) -> (usize, usize) {
        let before = &self.s[..pos];
        let line = before.matches('\n').count() + 1;
        let col = before
            .rfind('\n')
            .map_or(before.len(), |i| before.len() - i - 1)
            + 1;
        (line, col)
    }
    fn err(&self, pos: usize, message: impl Into<String>) -> XmlError {
        let (line, column) = self.line_col(pos);
        XmlError {
            line,
            column,
            message: message.into(),
        }
    }
    fn skip_ws(&mut self) {
        let r = self.rest();
        self.pos += r.len() - r.trim_start().len();
    }
    /// Advances past `end`, returning the text before it.
    fn until(&mut self, end: &str, what: &str) -> Result<&'a str, XmlError> {
        match self.rest().find(end) {
            Some(i) => {
                let t = &self.rest()[..i];
                self.pos += i + end.len();
                Ok(t)
            }
            None => Err(self.err(self.pos, format!("unterminated {what}: expected {end:?}"))),
        }
    }
    fn name(&mut self) -> Result<&'a str, XmlError> {
        let r = self.rest();
        let n = r
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '/' | '=' | '<'))
            .unwrap_or(r.len());
        if n == 0 {
            return Err(self.err(self.pos, "expected a name"));
        }
        self.pos += n;
        Ok(&r[..n])
    }
}

fn unescape(c: &Cursor, raw: &str, at: usize) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let end = tail
            .find(';')
            .ok_or_else(|| c.err(at, "'&' without a closing ';'"))?;
        let ent = &tail[1..end];
        let ch = match ent {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = if let Some(h) = ent.strip_prefix("#x") {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| c.err(at, format!("unknown entity &{ent};")))?
            }
        };
        out.push(ch);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses a document and returns its root element.
pub(crate) fn parse(s: &str) -> Result<Element, XmlError> {
    let mut c = Cursor { s, pos: 0 };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        if c.pos >= s.len() {
            break;
        }
        let r = c.rest();
        if !r.starts_with('<') {
            let n = r.find('<').unwrap_or(r.len());
            let at = c.pos;
            let text = &r[..n];
            c.pos += n;
            match stack.last_mut() {
                Some(top) => top.text.push_str(&unescape(&c, text, at)?),
                None if text.trim().is_empty() => {}
                None => return Err(c.err(at, "text outside the root element")),
            }
            continue;
        }
        let start = c.pos;
        if r.starts_with("<?") {
            c.pos += 2;
            c.until("?>", "processing instruction")?;
        } else if r.starts_with("<!--") {
            c.pos += 4;
            c.until("-->", "comment")?;
        } else if r.starts_with("<![CDATA[") {
            c.pos += 9;
            let t = c.until("]]>", "CDATA section")?;
            match stack.last_mut() {
                Some(top) => top.text.push_str(t),
                None => return Err(c.err(start, "CDATA outside the root element")),
            }
        } else if r.starts_with("<!") {
            c.pos += 2;
            c.until(">", "declaration")?;
        } else if r.starts_with("</") {
            c.pos += 2;
            let name = c.name()?;
            c.skip_ws();
            if !c.rest().starts_with('>') {
                return Err(c.err(c.pos, "expected '>' after the closing tag's name"));
            }
            c.pos += 1;
            let el = stack.pop().ok_or_else(|| {
                c.err(
                    start,
                    format!("closing tag </{name}> without an opening tag"),
                )
            })?;
            if el.name != name {
                return Err(c.err(start, format!("expected </{}>, found </{name}>", el.name)));
            }
            match stack.last_mut() {
                Some(top) => top.children.push(el),
                None if root.is_none() => root = Some(el),
                None => return Err(c.err(start, "a second root element")),
            }
        } else {
            c.pos += 1;
            let (line, column) = c.line_col(start);
            let name = c.name()?.to_owned();
            let mut el = Element {
                name,
                line,
                column,
                ..Element::default()
            };
            let self_closing = loop {
                c.skip_ws();
                let r = c.rest();
                if r.starts_with("/>") {
                    c.pos += 2;
                    break true;
                }
                if r.starts_with('>') {
                    c.pos += 1;
                    break false;
                }
                if r.is_empty() {
                    return Err(c.err(c.pos, format!("unterminated tag <{}>", el.name)));
                }
                let key = c.name()?.to_owned();
                c.skip_ws();
                if !c.rest().starts_with('=') {
                    return Err(c.err(c.pos, format!("expected '=' after attribute {key}")));
                }
                c.pos += 1;
                c.skip_ws();
                let q = match c.rest().chars().next() {
                    Some(q @ ('"' | '\'')) => q,
                    _ => return Err(c.err(c.pos, "expected a quoted attribute value")),
                };
                c.pos += 1;
                let at = c.pos;
                let raw = c.until(if q == '"' { "\"" } else { "'" }, "attribute value")?;
                el.attrs.push((key, unescape(&c, raw, at)?));
            };
            if self_closing {
                match stack.last_mut() {
                    Some(top) => top.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => return Err(c.err(start, "a second root element")),
                }
            } else {
                if root.is_some() {
                    return Err(c.err(start, "a second root element"));
                }
                stack.push(el);
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(c.err(s.len(), format!("unclosed element <{}>", open.name)));
    }
    root.ok_or_else(|| c.err(s.len(), "no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements() {
        let e = parse("<?xml version='1.0'?>\n<a x=\"1\"><b>t &amp; u</b><!-- c --><c/></a>")
            .map_err(|e| e.message)
            .unwrap();
        assert_eq!(e.name, "a");
        assert_eq!(e.attrs, vec![("x".into(), "1".into())]);
        assert_eq!(e.child("b").unwrap().text, "t & u");
        assert!(e.child("c").is_some());
        assert_eq!(e.line, 2);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("<a>\n  <b></c></a>").err().unwrap();
        assert_eq!((e.line, e.column), (2, 6));
        assert!(parse("<a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a></a><b/>").is_err());
    }
}
