{
  "targets": [
    {
      "target_name": "vmigrate_libvirt",
      "sources": [
        "src/runtime.cc",
        "src/connection.cc",
        "src/domain.cc",
        "src/dirtyrate.cc",
        "src/addon.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-std=gnu++17", "-Wall", "-Wno-unused-parameter", "<!@(pkg-config --cflags libvirt libvirt-qemu)"],
      # Never unmapped: the private pool and libvirt's event-loop thread outlive a worker_thread
      # that loaded the addon (Node dlcloses addons when that env exits).
      "ldflags": ["-Wl,-z,nodelete"],
      "libraries": ["<!@(pkg-config --libs libvirt libvirt-qemu)"]
    }
  ]
}
