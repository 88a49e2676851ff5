// Owns the coefficient tables of vrcp14 and vrsqrt14, shared by the reference
// interpreter and the JIT so both evaluate the same piecewise-linear
// approximation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace avx512emu::approx14 {

// The coefficients are Intel's, from the reference implementation the SDM
// cites for VRCP14/VRSQRT14 ("Reference Implementations for IA Approximation
// Instructions"); the instructions are defined as exactly this evaluation.
//
// vrcp14 on a significand m in [1, 2): segment i = the top 6 fraction bits,
// slope b[i] (10 bits) and value a[i] (18 bits) at the segment's midpoint.
// Listed as the reference lists them: b[0], a[0], b[1], a[1], ...
inline constexpr uint32_t kRcpCoefficients[128] = {
    1009, 260119, 977, 256148, 949, 252296, 921, 248558, 893, 244929, 869, 241405, 843, 237981,
    821,  234652, 797, 231416, 777, 228266, 755, 225202, 735, 222220, 717, 219314, 699, 216485,
    681,  213727, 663, 211038, 647, 208417, 631, 205859, 617, 203364, 601, 200929, 587, 198551,
    573,  196229, 561, 193960, 547, 191743, 535, 189576, 523, 187458, 513, 185387, 501, 183360,
    491,  181377, 479, 179439, 469, 177540, 459, 175681, 451, 173860, 441, 172077, 433, 170330,
    423,  168618, 415, 166940, 407, 165295, 399, 163682, 391, 162101, 385, 160550, 377, 159027,
    369,  157535, 363, 156069, 357, 154631, 349, 153219, 343, 151832, 337, 150470, 331, 149133,
    325,  147819, 319, 146528, 315, 145260, 309, 144012, 303, 142787, 299, 141582, 293, 140397,
    289,  139232, 285, 138085, 279, 136959, 275, 135853, 271, 134763, 267, 133689, 263, 132631,
    259,  131589};

// vrsqrt14 on x in [1, 4): segment i = the top 5 fraction bits of the
// significand, on [1, 2) (even exponent) and on [2, 4) (odd exponent).
// Listed as d1[0], c1[0], d2[0], c2[0], d1[1], ...: slopes d (10 bits),
// values c (19 bits).
inline constexpr uint32_t kRsqrtCoefficients[128] = {
    1001, 520261, 707, 367881, 955, 512437, 675, 362349, 915, 504953, 647, 357056, 877, 497790,
    619,  351992, 841, 490922, 595, 347136, 807, 484331, 571, 342475, 775, 478001, 549, 337997,
    747,  471909, 527, 333693, 719, 466046, 509, 329545, 693, 460397, 491, 325551, 669, 454947,
    473,  321697, 647, 449688, 457, 317977, 625, 444606, 441, 314385, 603, 439694, 427, 310910,
    585,  434939, 413, 307549, 567, 430335, 401, 304295, 549, 425875, 389, 301139, 533, 421551,
    377,  298079, 517, 417355, 365, 295115, 501, 413284, 355, 292237, 487, 409329, 345, 289439,
    473,  405487, 335, 286722, 461, 401748, 325, 284080, 449, 398111, 317, 281508, 437, 394571,
    309,  279006, 425, 391127, 301, 276569, 415, 387770, 293, 274195, 403, 384498, 285, 271882,
    393,  381307, 279, 269625, 385, 378194, 271, 267425, 375, 375155, 265, 265276, 367, 372190,
    259,  263178};

//! Bits of the value (a or c) in a packed entry; the slope sits above them.
inline constexpr int kRcpValueBits = 18, kRsqrtValueBits = 19;

//! One 64-entry table per instruction, one entry per segment: value |
//! slope << value bits. vrsqrt14's index is segment * 2 + (exponent odd).
struct PackedTable {
  std::array<uint32_t, 64> entry;
};
constexpr PackedTable pack(const uint32_t (&coefficients)[128], int value_bits) {
  PackedTable t{};
  for (int j = 0; j < 64; ++j)
    t.entry[std::size_t(j)] = coefficients[2 * j + 1] | coefficients[2 * j] << value_bits;
  return t;
}
inline constexpr PackedTable kRcpTable = pack(kRcpCoefficients, kRcpValueBits);
inline constexpr PackedTable kRsqrtTable = pack(kRsqrtCoefficients, kRsqrtValueBits);

}  // namespace avx512emu::approx14
