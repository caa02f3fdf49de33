// SPDX-License-Identifier: Apache-2.0
import GatehouseCommands

await Gatehouse.runMain()
