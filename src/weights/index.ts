// Real weights by name: the registry, the cache and downloads (see registry.ts, cache.ts, download.ts).
export {
  type CacheOptions,
  cacheDir,
  type FileState,
  fileState,
  sha256File,
  type VerifyResult,
  verifyWeights,
  weightFilePath,
  weightPath,
} from "./cache.js";
export {
  type FetchOptions,
  type FetchProgress,
  fetchWeights,
  isOffline,
  WeightsError,
  type WeightsErrorKind,
} from "./download.js";
export {
  entrySize,
  fileUrl,
  findWeight,
  getWeight,
  HF_HOST,
  hubEndpoint,
  listWeights,
  registerWeight,
  unregisterWeight,
  type WeightEntry,
  type WeightFile,
  weightNames,
} from "./registry.js";
export { configOfWeight, isWeightName, resolveWeights } from "./resolve.js";
