# Sourced by the bench scripts: two network namespaces joined by one veth pair, made for a run
# and deleted on exit. Nothing outside them is touched, and nothing is sent anywhere else.
#
#   veth_up TX RX PREFIX [TX_MAC RX_MAC]
#       creates namespaces TX and RX, vtx (in TX, PREFIX.1/24) <-> vrx (in RX, PREFIX.2/24),
#       IPv6 off, lo up, optional fixed MACs; PREFIX is a 10.x.y network (e.g. 10.200.0)
#   veth_down TX RX
#       deletes both namespaces (and with them the pair); safe to call twice

veth_up() {
    local tx=$1 rx=$2 prefix=$3 txmac=${4:-} rxmac=${5:-}
    ip netns add "$tx"
    ip netns add "$rx"
    ip -n "$tx" link add vtx type veth peer name vrx netns "$rx"
    for ns in "$tx" "$rx"; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    if [ -n "$txmac" ]; then ip -n "$tx" link set vtx address "$txmac"; fi
    if [ -n "$rxmac" ]; then ip -n "$rx" link set vrx address "$rxmac"; fi
    ip -n "$tx" addr add "$prefix.1/24" dev vtx
    ip -n "$rx" addr add "$prefix.2/24" dev vrx
    ip -n "$tx" link set vtx up
    ip -n "$rx" link set vrx up
}

veth_down() {
    ip netns del "$1" 2>/dev/null || true
    ip netns del "$2" 2>/dev/null || true
}
