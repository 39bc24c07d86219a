//! `qemu-img` operations on real images.

use params::Params;
use vm::image::Image;

#[test]
fn create_check_snapshot_convert_remove() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Params::new();
    p.insert("image_name", "disk");
    p.insert("image_size", "8M");
    let img = Image::from_params(&p, "vm1", "image1", dir.path()).expect("view");
    assert_eq!(img.path, dir.path().join("disk.qcow2"));
    img.create().expect("create");
    img.check().expect("check");
    img.snapshot_create("s1").expect("snapshot");
    assert_eq!(img.snapshot_list().expect("list"), vec!["s1".to_owned()]);
    let raw = img
        .convert("raw", &dir.path().join("disk.raw"))
        .expect("convert");
    assert_eq!(raw.info().expect("info")["format"], "raw");
    img.remove().expect("remove");
    assert!(!img.path.exists());
    img.remove().expect("removing twice is fine");
    // A failing qemu-img names the command and shows its stderr.
    let err = img.check().expect_err("missing file").to_string();
    assert!(
        err.contains("qemu-img") && err.contains("disk.qcow2"),
        "{err}"
    );
}

/// `image_raw_device` means what it means to the command-line builder: any boolean spelling
/// (`yes`, `on`, `true`); a value that is no boolean is an error, not "no".
#[test]
fn raw_device_is_read_as_the_builder_reads_it() {
    let root = std::path::Path::new("/images");
    let mut p = Params::new();
    p.insert("image_name", "/dev/sdb");
    for yes in ["yes", "on", "true"] {
        p.insert("image_raw_device", yes);
        let img = Image::from_params(&p, "vm1", "image1", root).expect("view");
        assert_eq!(img.path, std::path::Path::new("/dev/sdb"), "{yes}");
    }
    p.insert("image_raw_device", "maybe");
    let err = Image::from_params(&p, "vm1", "image1", root).expect_err("a bad boolean is an error");
    assert!(
        format!(
            "{err}: {}",
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .unwrap_or_default()
        )
        .contains("image_raw_device"),
        "{err}"
    );
}

/// An image on a network backend (avocado-vt's `enable_gluster`…) is not created or removed by
/// kvmtest (its server is the user's): an error, never a local file in its place.
#[test]
fn network_backends_are_refused_not_replaced_by_a_file() {
    let mut p = Params::new();
    p.insert("image_name", "disk");
    p.insert("enable_gluster", "yes");
    p.insert("gluster_server", "gluster.example.org");
    p.insert("gluster_volume_name", "vol");
    let err = Image::from_params(&p, "vm1", "image1", std::path::Path::new("/images"))
        .expect_err("a gluster image is not a local file");
    let text = err.to_string();
    assert!(
        text.contains("enable_gluster selects the gluster backend")
            && text.contains("set up by the user"),
        "{text}"
    );
}

/// A luks image is created with its `image_secret` by the real qemu-img, and is a luks file.
#[test]
fn luks_images_are_created_with_their_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Params::new();
    p.insert("image_name", "enc");
    p.insert("image_format", "luks");
    p.insert("image_secret", "red,hat");
    p.insert("image_size", "4M");
    let img = Image::from_params(&p, "vm1", "image1", dir.path()).expect("view");
    img.create().expect("create");
    assert_eq!(img.info().expect("info")["format"], "luks");
    p.insert("image_secret", "");
    let err =
        Image::from_params(&p, "vm1", "image1", dir.path()).expect_err("luks without a secret");
    assert!(crate_chain(&err).contains("image_secret"), "{err}");
}

fn crate_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `images_base_dir` (avocado-vt's) holds relative `image_name`s; absolute ones stay.
#[test]
fn images_base_dir_holds_relative_image_names() {
    let root = std::path::Path::new("/scratch");
    let mut p = Params::new();
    p.insert("image_name", "images/rhel");
    p.insert("images_base_dir", "/var/lib/avocado");
    let img = Image::from_params(&p, "vm1", "image1", root).expect("view");
    assert_eq!(
        img.path,
        std::path::Path::new("/var/lib/avocado/images/rhel.qcow2")
    );
    p.insert("image_name", "/srv/disk");
    let img = Image::from_params(&p, "vm1", "image1", root).expect("view");
    assert_eq!(img.path, std::path::Path::new("/srv/disk.qcow2"));
    p.insert("image_name", "disk");
    p.insert("images_base_dir", "rel");
    let img = Image::from_params(&p, "vm1", "image1", root).expect("view");
    assert_eq!(img.path, std::path::Path::new("/scratch/rel/disk.qcow2"));
}

/// `image_chain = base sn1`: `sn1` is created as an overlay of `base` (avocado-vt's backing
/// chain), taking the base's size when `image_size` is not given; the base is not written.
#[test]
fn an_image_chain_makes_an_overlay_of_the_image_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Params::new();
    p.insert("images", "sn1");
    p.insert("image_chain", "base sn1");
    p.insert("image_name_base", "base");
    p.insert("image_size_base", "16M");
    p.insert("image_format_base", "raw");
    p.insert("image_name_sn1", "overlay");
    let base = Image::from_params(&p, "vm1", "base", dir.path()).expect("base");
    assert!(
        base.backing.is_none(),
        "the chain's first image has no backing"
    );
    base.create().expect("create the base");
    let sn1 = Image::from_params(&p, "vm1", "sn1", dir.path()).expect("overlay");
    assert_eq!(
        sn1.backing,
        Some((dir.path().join("base.raw"), "raw".to_owned()))
    );
    sn1.create().expect("create the overlay");
    let info = sn1.info().expect("info");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 16 << 20, "{info}");
    assert_eq!(
        info["backing-filename"].as_str(),
        Some(dir.path().join("base.raw").to_string_lossy().as_ref()),
        "{info}"
    );
    assert_eq!(info["backing-filename-format"], "raw", "{info}");
}
