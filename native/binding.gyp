{
  "targets": [
    {
      "target_name": "dedos_native",
      "sources": [
        "src/addon.cpp",
        "src/tensor.cpp",
        "src/ops.cpp",
        "src/nn.cpp",
        "src/autograd.cpp",
        "src/io.cpp",
        "src/allocator.cpp",
        "src/dist.cpp",
        "src/gemm.cpp",
        "src/sgemm.cpp",
        "src/aten-gemm.cpp",
        "src/packed.cpp"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node config.cjs include)"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "USE_C10D_GLOO", "<!@(node config.cjs defines)"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "libraries": ["<!@(node config.cjs libs)"],
      "conditions": [
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
            "CLANG_CXX_LIBRARY": "libc++",
            "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
            "GCC_ENABLE_CPP_RTTI": "YES",
            "GCC_OPTIMIZATION_LEVEL": "2",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "OTHER_CPLUSPLUSFLAGS": ["-Wno-unused-parameter", "-Wno-deprecated-declarations"]
          }
        }]
      ]
    }
  ]
}
