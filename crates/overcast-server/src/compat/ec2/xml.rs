//! EC2's XML answers: the envelope named after the action in the namespace of the version
//! the client sent (with its trailing slash), lists as `<xSet><item>…</item></xSet>`, and
//! the error document every EC2 client reads.

use std::fmt::{Display, Write};

/// An XML fragment being written; text is escaped.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    pub fn new() -> Xml {
        Xml::default()
    }

    /// `<name>value</name>`.
    pub fn text(&mut self, name: &str, value: impl Display) -> &mut Xml {
        let _ = write!(self.0, "<{name}>");
        escape_into(&mut self.0, &value.to_string());
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// `<name>value</name>` when there is a value.
    pub fn maybe(&mut self, name: &str, value: Option<impl Display>) -> &mut Xml {
        if let Some(value) = value {
            self.text(name, value);
        }
        self
    }

    /// `<name>…</name>` around what `inner` writes.
    pub fn node(&mut self, name: &str, inner: impl FnOnce(&mut Xml)) -> &mut Xml {
        let _ = write!(self.0, "<{name}>");
        inner(self);
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// `<name><item>…</item>…</name>`, one item per element (`<name/>` for none).
    pub fn set<T>(
        &mut self,
        name: &str,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut Xml, T),
    ) -> &mut Xml {
        let mut items = items.into_iter().peekable();
        if items.peek().is_none() {
            let _ = write!(self.0, "<{name}/>");
            return self;
        }
        let _ = write!(self.0, "<{name}>");
        for each in items {
            self.node("item", |xml| item(xml, each));
        }
        let _ = write!(self.0, "</{name}>");
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// An action's answer: `<{Action}Response xmlns="http://ec2.amazonaws.com/doc/{version}/">`
/// with the request id first.
pub fn answer(action: &str, version: &str, request_id: &str, body: Xml) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<{action}Response xmlns=\"http://ec2.amazonaws.com/doc/"
    );
    escape_into(&mut out, version);
    out.push_str("/\"><requestId>");
    escape_into(&mut out, request_id);
    out.push_str("</requestId>");
    out.push_str(&body.into_string());
    let _ = write!(out, "</{action}Response>");
    out
}

/// An STS answer (the awsQuery shape): the result in `<{Action}Result>`, the request id
/// in `<ResponseMetadata>`.
pub fn sts_answer(action: &str, request_id: &str, body: Xml) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        out,
        "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>"
    );
    out.push_str(&body.into_string());
    let _ = write!(out, "</{action}Result><ResponseMetadata><RequestId>");
    escape_into(&mut out, request_id);
    let _ = write!(out, "</RequestId></ResponseMetadata></{action}Response>");
    out
}

/// The error document: `<Response><Errors><Error><Code/><Message/></Error></Errors>
/// <RequestID/></Response>`.
pub fn error(code: &str, message: &str, request_id: &str) -> String {
    let mut body = Xml::new();
    body.node("Errors", |xml| {
        xml.node("Error", |xml| {
            xml.text("Code", code).text("Message", message);
        });
    })
    .text("RequestID", request_id);
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response>{}</Response>",
        body.into_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_echoes_the_version_with_its_slash_and_writes_sets() {
        let mut body = Xml::new();
        body.set("instancesSet", ["i-1", "i-2"], |xml, id| {
            xml.text("instanceId", id).node("currentState", |xml| {
                xml.text("code", 64).text("name", "stopping");
            });
        })
        .set("groupSet", Vec::<&str>::new(), |_, _| {})
        .maybe("nextToken", None::<&str>);
        assert_eq!(
            answer("StopInstances", "2014-10-01", "req-1", body),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <StopInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2014-10-01/\">\
             <requestId>req-1</requestId>\
             <instancesSet>\
             <item><instanceId>i-1</instanceId><currentState><code>64</code><name>stopping</name></currentState></item>\
             <item><instanceId>i-2</instanceId><currentState><code>64</code><name>stopping</name></currentState></item>\
             </instancesSet><groupSet/>\
             </StopInstancesResponse>"
        );
    }

    #[test]
    fn errors_take_ec2s_shape_and_text_is_escaped() {
        assert_eq!(
            error("InvalidParameterValue", "tag <a> & \"b\"", "req-2"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>InvalidParameterValue</Code>\
             <Message>tag &lt;a&gt; &amp; &quot;b&quot;</Message>\
             </Error></Errors><RequestID>req-2</RequestID></Response>"
        );
    }
}
