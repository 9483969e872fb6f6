//! Positions in configuration text: byte offsets (as TOML errors give them) to the
//! line:column a user can find in an editor.

/// 1-based line and column (in characters) of byte `offset` in `text`; an offset past the end
/// or inside a character is moved back to the nearest character start.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
    (line, column)
}
