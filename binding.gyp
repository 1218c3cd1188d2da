{
  # Same sources as CMakeLists.txt, for node-gyp:
  #   node-gyp rebuild --nodedir=$(dirname $(dirname $(readlink -f $(which node))))
  "targets": [
    {
      "target_name": "mta_vip",
      "sources": [
        "native/addon.cc",
        "native/announce.cc",
        "native/args.cc",
        "native/arp.cc",
        "native/arp_all_hosts.cc",
        "native/close_later.cc",
        "native/errors.cc",
        "native/ifaces.cc",
        "native/ip.cc",
        "native/link.cc",
        "native/ndisc.cc",
        "native/neigh.cc",
        "native/netlink.cc",
        "native/netlink_addr.cc",
        "native/packet_socket.cc",
        "native/probe.cc",
        "native/sniff.cc",
        "native/tcp_sockets.cc",
        "native/watch.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "libraries": ["-lpthread"]
    }
  ]
}
