/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sparkler PC platform that `sparkler run` gives Linux guests: where
 * memory, boot data, ACPI tables and devices live. e820, ACPI and the
 * devices all take their numbers from here, so they describe one map.
 */
#ifndef SPARKLER_PLATFORM_H
#define SPARKLER_PLATFORM_H

/* ---- guest-physical memory ---- */
#define SPK_PC_LOW_RAM_END    0x9fc00ull  /* e820 RAM [0, here); EBDA above */
#define SPK_PC_BOOT_PARAMS    0x7000ull   /* Linux zero page / PVH start info */
#define SPK_PC_PAGE_TABLES    0x9000ull   /* long-mode tables (x86.h) */
#define SPK_PC_CMDLINE        0x20000ull  /* kernel command line */
#define SPK_PC_CMDLINE_MAX    0x10000ull  /* at most 64 KiB with its NUL */
#define SPK_PC_ACPI_START     0xe0000ull  /* RSDP first, then the tables */
#define SPK_PC_ACPI_END       0x100000ull /* [START, END) is e820 reserved */
#define SPK_PC_ACPI_TABLES_END 0xef000ull /* the tables stay below the VMGENID page */
#define SPK_PC_VMGENID        0xef000ull  /* the VM generation ID (16 bytes), e820 reserved */
#define SPK_PC_HIGH_RAM       0x100000ull /* RAM from 1 MiB up to the hole */
#define SPK_PC_KERNEL_DEFAULT 0x1000000ull /* 16 MiB: bzImage's usual pref_address */

/* The 32-bit hole: no RAM in [HOLE_START, 4 GiB); RAM beyond continues at 4 GiB. */
#define SPK_PC_HOLE_START     0xc0000000ull
#define SPK_PC_HIGH_RAM_START 0x100000000ull

/* Inside the hole */
#define SPK_PC_PCI_MMIO_START 0xc0000000ull /* 32-bit PCI BARs */
#define SPK_PC_PCI_MMIO_SIZE  0x20000000ull /* 512 MiB */
#define SPK_PC_PCI_ECAM       0xe0000000ull /* PCI ECAM, bus 0 (MCFG) */
#define SPK_PC_PCI_ECAM_SIZE  0x100000ull   /* 1 MiB: one bus */
#define SPK_PC_PCI_INTX_GSI   16            /* PCI INTx: GSIs 16-23 (the DSDT's _PRT) */
#define SPK_PC_BOOT_TIMER     0xfe000000ull /* boot-timer device, one page */
#define SPK_PC_IOAPIC         0xfec00000ull
#define SPK_PC_LAPIC          0xfee00000ull

/* ---- ports ---- */
#define SPK_PC_COM1          0x3f8
#define SPK_PC_COM1_IRQ      4
#define SPK_PC_I8042_DATA    0x60
#define SPK_PC_I8042_CMD     0x64
#define SPK_PC_RTC           0x70  /* index 0x70, data 0x71 */
#define SPK_PC_RTC_IRQ       8
#define SPK_PC_PM1A_EVT      0x600 /* 4 bytes: PM1a status (2) + enable (2) */
#define SPK_PC_PM1A_CNT      0x604 /* 2 bytes: PM1a control */
#define SPK_PC_RESET_PORT    0x608 /* ACPI reset register (FADT); not 0xcf9, inside PCI 0xcf8 */
#define SPK_PC_RESET_VALUE   0x06
#define SPK_PC_GPE0_BLK      0x60c /* 4 bytes: GPE0 status (2) + enable (2); GPE 0 power button */
#define SPK_PC_GPE_VMGENID   1     /* GPE 1: the VM generation ID changed (\_GPE._E01) */
#define SPK_PC_SCI_IRQ       9
#define SPK_PC_S5_SLP_TYP    5     /* \_S5 package value; PM1a_CNT.SLP_TYP */

/* ---- boot timer ---- */
/* The guest writes this byte at offset 0 when it reaches init, as with
 * Firecracker's boot timer: `devmem 0xfe000000 8 123`. */
#define SPK_PC_BOOT_TIMER_MAGIC 123

#endif
