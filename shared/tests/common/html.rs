//! Small structural checks on generated HTML/XML, and a rasterizer for the QR SVG so the
//! code can be decoded by a real QR reader (rqrr).

#![allow(dead_code)]

/// Checks that every non-void element is closed in order. Returns the first problem.
pub fn check_balanced(doc: &str) -> Result<(), String> {
    const VOID: &[&str] = &["meta", "br", "img", "input", "link", "hr"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = doc;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').ok_or("unclosed `<`")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if name.is_empty() {
            return Err(format!("bad tag `<{tag}>`"));
        }
        if tag.ends_with('/') || VOID.contains(&name.as_str()) {
            continue;
        }
        stack.push(name);
    }
    if stack.is_empty() {
        Ok(())
    } else {
        Err(format!("unclosed elements: {stack:?}"))
    }
}

/// Decodes the first QR code found in an SVG made by `chatmail_shared::qr::svg`.
pub fn decode_qr_svg(svg: &str) -> String {
    let attr = |name: &str| -> usize {
        let key = format!(" {name}=\"");
        let start = svg.find(&key).expect("attribute") + key.len();
        let end = start + svg[start..].find('"').unwrap();
        svg[start..end].parse().unwrap()
    };
    let (w, h) = (attr("width"), attr("height"));
    let d_start = svg.find(" d=\"").expect("path") + 4;
    let d = &svg[d_start..d_start + svg[d_start..].find('"').unwrap()];
    let mut dark = vec![false; w * h];
    // The renderer writes rectangles as `M{x} {y}h{w}v{h}H{x}V{y}`.
    for rect in d.split('M').filter(|s| !s.is_empty()) {
        let nums: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for yy in y..y + rh {
            for xx in x..x + rw {
                dark[yy * w + xx] = true;
            }
        }
    }
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(
            w,
            h,
            |x, y| if dark[y * w + x] { 0 } else { 255 },
        );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "expected one QR code");
    let (_meta, content) = grids[0].decode().expect("QR decodes");
    content
}

/// Tags the page code itself writes; anything else must have come from input.
pub const OUR_TAGS: &[&str] = &[
    "html", "head", "meta", "title", "style", "body", "nav", "a", "main", "h1", "h2", "p", "em",
    "strong", "ul", "ol", "li", "table", "tr", "th", "td", "footer", "svg", "rect", "path",
];

/// Fails if the document holds a tag we never write, or an event-handler attribute.
pub fn check_only_our_markup(doc: &str) -> Result<(), String> {
    let mut rest = doc;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').ok_or("unclosed `<`")?;
        let tag = &rest[..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        if !OUR_TAGS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(format!("unexpected tag <{tag}>"));
        }
        let lower = tag.to_ascii_lowercase();
        if lower
            .split_whitespace()
            .skip(1)
            .any(|a| a.starts_with("on"))
        {
            return Err(format!("event handler in <{tag}>"));
        }
    }
    Ok(())
}
