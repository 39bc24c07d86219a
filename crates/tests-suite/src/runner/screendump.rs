//! Screendumps for the report: after a test that failed or errored (and after any test with
//! `screendump_on_pass = yes`), each running VM's screen, as `screendump-<vm>.png` in the
//! test's directory, before post-processing may destroy the VM.
//!
//! QEMU writes the file itself (QMP `screendump` with `"format": "png"`, QEMU ≥ 7.1). A QEMU
//! without the `format` argument writes PPM, which is converted to PNG here (the `png` crate)
//! and removed. A VM without a display (no `vga`, `-nodefaults`) has nothing to dump: that is
//! logged, not an error — the screendump is evidence, never a verdict.

use std::fs;
use std::io::BufWriter;
use std::path::Path;

use serde_json::json;

use crate::registry::TestContext;

/// Takes the screendump of every running VM of `ctx`'s environment.
pub(super) async fn take_all(ctx: &TestContext) {
    for name in ctx.env.vm_names() {
        let Ok(vm) = ctx.env.vm(&name) else { continue };
        if !vm.is_alive() {
            continue;
        }
        let png = ctx.dir.join(format!("screendump-{name}.png"));
        let args = json!({"filename": png.to_string_lossy(), "format": "png"});
        let result = match vm.qmp("screendump", args).await {
            Err(e) if crate::error_chain(&e).contains("format") => {
                // No `format` argument (QEMU < 7.1): PPM, converted here.
                let ppm = png.with_extension("ppm");
                let args = json!({"filename": ppm.to_string_lossy()});
                match vm.qmp("screendump", args).await {
                    Ok(_) => {
                        let converted = ppm_to_png(&ppm, &png);
                        let _ = fs::remove_file(&ppm);
                        converted
                    }
                    Err(e) => Err(crate::error_chain(&e)),
                }
            }
            Err(e) => Err(crate::error_chain(&e)),
            Ok(_) => Ok(()),
        };
        match result {
            Ok(()) => ctx.log.info(format_args!(
                "screendump of {name}: {}",
                png.file_name()
                    .map(|f| f.to_string_lossy())
                    .unwrap_or_default()
            )),
            Err(e) => ctx.log.warn(format_args!("no screendump of {name}: {e}")),
        }
    }
}

/// Converts a binary PPM (`P6`, maxval 255: what QEMU writes) to PNG.
fn ppm_to_png(ppm: &Path, png: &Path) -> Result<(), String> {
    let data = fs::read(ppm).map_err(|e| format!("reading {}: {e}", ppm.display()))?;
    let (width, height, pixels) = parse_ppm(&data)?;
    let file = fs::File::create(png).map_err(|e| format!("creating {}: {e}", png.display()))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), width, height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut w| w.write_image_data(pixels))
        .map_err(|e| format!("writing {}: {e}", png.display()))
}

/// A `P6` PPM's width, height and RGB bytes.
fn parse_ppm(data: &[u8]) -> Result<(u32, u32, &[u8]), String> {
    let bad = |why: &str| format!("not a PPM QEMU writes: {why}");
    // Header: "P6", then width, height, maxval as ASCII numbers separated by whitespace
    // (comments start with '#'), then one whitespace byte and the pixels.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < data.len() && (data[i].is_ascii_whitespace() || data[i] == b'#') {
            if data[i] == b'#' {
                while i < data.len() && data[i] != b'\n' {
                    i += 1;
                }
            }
            i += 1;
        }
        let start = i;
        while i < data.len() && !data[i].is_ascii_whitespace() {
            i += 1;
        }
        if start == i {
            return Err(bad("a short header"));
        }
        fields.push(&data[start..i]);
    }
    if fields[0] != b"P6" {
        return Err(bad("no P6 magic"));
    }
    let num = |f: &[u8]| -> Result<u32, String> {
        std::str::from_utf8(f)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("a header number"))
    };
    let (w, h, max) = (num(fields[1])?, num(fields[2])?, num(fields[3])?);
    if max != 255 {
        return Err(bad("a maxval other than 255"));
    }
    let pixels = data.get(i + 1..).ok_or_else(|| bad("no pixels"))?;
    let need = usize::try_from(u64::from(w) * u64::from(h) * 3).map_err(|_| bad("its size"))?;
    if pixels.len() < need {
        return Err(bad("fewer pixels than its size"));
    }
    Ok((w, h, &pixels[..need]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_converts_to_png() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ppm = dir.path().join("s.ppm");
        let png_path = dir.path().join("s.png");
        let mut data = b"P6\n# qemu\n2 1 255\n".to_vec();
        data.extend_from_slice(&[255, 0, 0, 0, 0, 255]);
        fs::write(&ppm, &data).expect("write");
        ppm_to_png(&ppm, &png_path).expect("convert");
        let decoder = png::Decoder::new(std::io::BufReader::new(
            fs::File::open(&png_path).expect("open"),
        ));
        let mut reader = decoder.read_info().expect("png header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("frame");
        assert_eq!((info.width, info.height), (2, 1));
        assert_eq!(&buf[..6], &[255, 0, 0, 0, 0, 255]);
        assert!(parse_ppm(b"P3\n1 1 255\n\0\0\0").is_err());
        assert!(parse_ppm(b"P6\n2 2 255\n\0\0\0").is_err());
    }
}
