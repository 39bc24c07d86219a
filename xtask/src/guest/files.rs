//! The guest's own files, written into the initramfs: `/init`, busybox init and shell
//! configuration, the DHCP and hotplug helpers, the power-button handler and `lspci` (busybox sh
//! scripts and configuration, not host-side commands).

pub(super) struct GuestFile {
    /// Path inside the initramfs, relative to its root.
    pub(super) path: &'static str,
    pub(super) mode: u32,
    pub(super) text: &'static str,
}

pub(super) const GUEST_FILES: &[GuestFile] = &[
    GuestFile {
        path: "init",
        mode: 0o755,
        text: r#"#!/bin/busybox sh
# kvmtest test guest: sets the system up as PID 1, then execs busybox init (console shell).
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/log /root /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin HOME=/root ENV=/etc/profile PS1='kvmtest# '
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1
# Keep kernel messages off the console, where tests talk to the shell.
dmesg -n 1
ln -s /run /var/run
hostname kvmtest
while read -r m; do
    modprobe "$m" || echo "kvmtest-init: modprobe $m failed"
done </etc/modules
ip link set lo up
# DHCP on the NICs present at boot, in parallel; each returns leased or after about 5 s.
for d in /sys/class/net/eth*; do
    [ -e "$d" ] && kvmtest-dhcp "${d##*/}" &
done
wait
kvmtest-netwatch &
telnetd -l /bin/sh
(while :; do nc -ll -p 2222 -e /sbin/kvmtest-ncsh; sleep 1; done) &
acpid
echo "KVMTEST-GUEST-READY kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"
exec /bin/busybox init
"#,
    },
    GuestFile {
        path: "etc/inittab",
        mode: 0o644,
        text: "# busybox init: a root shell on the console, respawned when it exits.
::respawn:/bin/cttyhack /bin/sh
::ctrlaltdel:/sbin/reboot -f
::shutdown:/bin/sync
",
    },
    GuestFile {
        path: "etc/profile",
        mode: 0o644,
        text: "export PATH=/sbin:/usr/sbin:/bin:/usr/bin
PS1='kvmtest# '
",
    },
    GuestFile {
        path: "etc/passwd",
        mode: 0o644,
        text: "root:x:0:0:root:/root:/bin/sh\n",
    },
    GuestFile {
        path: "etc/group",
        mode: 0o644,
        text: "root:x:0:\n",
    },
    GuestFile {
        path: "sbin/kvmtest-dhcp",
        mode: 0o755,
        text: r#"#!/bin/sh
# kvmtest-dhcp IFACE: brings IFACE up with a DHCP client, unless one already serves it.
# Returns once leased, or after 5 tries (the client then keeps trying in the background).
i=$1
p=/run/udhcpc.$i.$(cat "/sys/class/net/$i/ifindex" 2>/dev/null).pid
[ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null && exit 0
ip link set "$i" up
exec udhcpc -b -t 5 -T 1 -A 3 -i "$i" -p "$p" -s /etc/udhcpc.script -x hostname:kvmtest \
    >>"/var/log/udhcpc.$i.log" 2>&1
"#,
    },
    GuestFile {
        path: "sbin/kvmtest-netwatch",
        mode: 0o755,
        text: r#"#!/bin/sh
# Gives every NIC that appears later (hotplug) a DHCP client.
while :; do
    for d in /sys/class/net/eth*; do
        [ -e "$d" ] && kvmtest-dhcp "${d##*/}"
    done
    sleep 1
done
"#,
    },
    GuestFile {
        path: "sbin/kvmtest-ncsh",
        mode: 0o755,
        text: "#!/bin/sh
# The shell behind `nc -ll -e`: busybox nc connects stdin and stdout only.
exec /bin/sh -i 2>&1
",
    },
    GuestFile {
        path: "etc/udhcpc.script",
        mode: 0o755,
        text: r#"#!/bin/sh
# udhcpc hook: configures the leased address, routes and resolv.conf.
# Every route of a NIC gets metric = its ifindex. QEMU's user networking gives every NIC the same
# 10.0.2.0/24, and the kernel's own subnet routes all have metric 0, so replies would leave by
# whichever NIC got its lease first; with these metrics the lowest-numbered NIC always wins.
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    metric=$(cat "/sys/class/net/$interface/ifindex")
    prefix=${mask:-24}
    if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/$prefix "; then
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$prefix" dev "$interface"
        net=$(ipcalc -n "$ip/$prefix" | cut -d= -f2)
        ip route del "$net/$prefix" dev "$interface" 2>/dev/null
        ip route add "$net/$prefix" dev "$interface" src "$ip" metric "$metric"
    fi
    for r in $router; do
        ip route replace default via "$r" dev "$interface" metric "$metric"
        break
    done
    if [ -n "$dns" ]; then
        : >/etc/resolv.conf
        for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
    fi
    ;;
esac
exit 0
"#,
    },
    GuestFile {
        path: "etc/acpi/PWRF/00000080",
        mode: 0o755,
        text: "#!/bin/sh
# busybox acpid runs this on an ACPI power-button press (QMP system_powerdown).
sync
exec poweroff -f
",
    },
    GuestFile {
        path: "sbin/shutdown",
        mode: 0o755,
        text: "#!/bin/sh
# `shutdown [ARGS]`: powers off at once (disks synced first); the guest has nothing to stop.
sync
exec poweroff -f
",
    },
    GuestFile {
        path: "bin/lspci",
        mode: 0o755,
        text: r#"#!/bin/sh
# busybox has no lspci: prints `lspci -n` lines ("00:03.0 0200: 1af4:1000") from sysfs.
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    read -r v <"$d/vendor"
    read -r dev <"$d/device"
    read -r c <"$d/class"
    c=${c#0x}
    a=${d##*/}
    echo "${a#0000:} ${c%??}: ${v#0x}:${dev#0x}"
done
"#,
    },
];
