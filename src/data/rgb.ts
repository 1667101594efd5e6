// The decoded image type, on its own so that engine- and Node-free modules (the browser page) can name it.

/** 8-bit RGB pixels, row-major HWC. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}
