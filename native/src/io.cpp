// Memory-mapped checkpoint files: tensors view the file's pages directly (copy-on-write, never written back),
// so a multi-gigabyte checkpoint costs only the pages actually read.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "common.h"

namespace dedos {

struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  std::string path;
  ~Mapping() {
    if (base != nullptr && size > 0) munmap(base, size);
  }
};
using MappingPtr = std::shared_ptr<Mapping>;

void InitIO(Napi::Env env, Napi::Object exports) {
  DEDOS_OP("mapFile", {
    std::string path = dedos::ArgString(info, 0);
    int fd = open(path.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    fstat(fd, &st);
    auto m = std::make_shared<Mapping>();
    m->path = path;
    m->size = static_cast<size_t>(st.st_size);
    if (m->size > 0) {
      m->base = mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (m->base == MAP_FAILED) {
        m->base = nullptr;
        close(fd);
        throw std::runtime_error("cannot map '" + path + "': " + std::strerror(errno));
      }
    }
    close(fd);
    return Napi::External<MappingPtr>::New(env, new MappingPtr(m), [](Napi::Env, MappingPtr* p) { delete p; });
  });
  // fromMapped(mapping, byteOffset, dtypeCode, shape, strides|null) → tensor viewing the file's bytes.
  DEDOS_OP("fromMapped", {
    MappingPtr m = *info[0].As<Napi::External<MappingPtr>>().Data();
    int64_t off = dedos::ArgInt(info, 1);
    at::ScalarType st = dedos::ArgDType(info, 2);
    std::vector<int64_t> shape = dedos::ArgInts(info, 3);
    auto strides = dedos::ArgOptInts(info, 4);
    if (!strides) {
      strides = std::vector<int64_t>(shape.size());
      int64_t acc = 1;
      for (int64_t k = static_cast<int64_t>(shape.size()) - 1; k >= 0; k--) {
        (*strides)[k] = acc;
        acc *= shape[k];
      }
    }
    int64_t span = 1;  // elements from the first to one past the last
    for (size_t k = 0; k < shape.size(); k++) {
      if (shape[k] == 0) span = 0;
      else if (span > 0) span += (shape[k] - 1) * (*strides)[k];
    }
    size_t isz = c10::elementSize(st);
    if (off < 0 || static_cast<size_t>(off) + span * isz > m->size) {
      throw std::out_of_range("'" + m->path + "': tensor bytes [" + std::to_string(off) + ", " +
                              std::to_string(off + span * isz) + ") lie outside the file (" + std::to_string(m->size) +
                              " bytes; truncated file?)");
    }
    char* p = static_cast<char*>(m->base) + off;
    auto opts = at::TensorOptions().dtype(st);
    if (reinterpret_cast<uintptr_t>(p) % isz != 0) {
      // Misaligned data (allowed by safetensors): copy into an aligned buffer rather than risk vector loads.
      at::Tensor t = at::empty_strided(shape, *strides, opts);
      std::memcpy(t.data_ptr(), p, span * isz);
      return dedos::Ret(env, t);
    }
    MappingPtr keep = m;
    at::Tensor t = at::from_blob(p, shape, *strides, [keep](void*) mutable { keep.reset(); }, opts);
    return dedos::Ret(env, t);
  });
}

}  // namespace dedos
